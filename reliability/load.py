"""An accounted open-loop driver: every request sent ends as ok, an explicit error, or lost (none may be lost).

Sends follow `loadtest.schedule.Schedule` (constant rate), released by `make bench`'s pacer (`schedule.pace`);
latency counts from the scheduled time and goes into a `loadtest.recorder.Recorder` (HdrHistogram), so a stall
cannot hide behind a slowed generator, and `LoadResult.judged` applies `make bench`'s validity rules to the run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from contract import v2
from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.schedule import LATE_THRESHOLD_S, Schedule, pace
from loadtest.validity import DEFAULT, Criteria

DIGITS_SLO_MS = 100.0
"""digits' p99 SLO in `make bench` (loadtest.bench.DEFAULT_SLO_MS)."""


@dataclass
class Sample:
    """One request: when it was due and done (seconds since the run began), what came back, who served it."""

    due: float
    done: float
    status: int
    """HTTP status; 0 when the client gave up (a lost request: no answer within the client timeout)."""
    backend: str
    retry_after: str | None


@dataclass
class LoadResult:
    """Everything sent, and how each request ended."""

    samples: list[Sample] = field(default_factory=list)
    recorder: Recorder | None = None
    late_sends: int = 0
    rate: float = 0.0
    measured_s: float = 0.0
    """Seconds of sends after the warm-up."""
    generator_cpu_pct: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def ok(self) -> int:
        return sum(s.status == 200 for s in self.samples)

    @property
    def explicit_errors(self) -> int:
        return sum(s.status not in (0, 200) for s in self.samples)

    @property
    def lost(self) -> int:
        return sum(s.status == 0 for s in self.samples)

    def statuses(self) -> Counter[int]:
        """Status -> count (0: lost)."""
        return Counter(s.status for s in self.samples)

    def backends(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """Who served the successful requests due in [since, until)."""
        return Counter(s.backend for s in self.samples if s.status == 200 and since <= s.due < until)

    def latency_ms(self, q: float) -> float:
        """Quantile `q` (0..100) of latency from the scheduled send of successful requests, in ms."""
        assert self.recorder is not None
        return float(self.recorder.totals.from_schedule.get_value_at_percentile(q)) / 1000

    def judged(self, criteria: Criteria = DEFAULT, slo_ms: float = DIGITS_SLO_MS) -> dict[str, Any]:
        """The run as one `make bench` point (loadtest.point.build_point): VALID or not with every reason, and the
        p99-vs-SLO outcome; the criteria take this run's warm-up and window lengths."""
        rec = self.recorder
        assert rec is not None
        c = replace(criteria, warmup_s=rec.warmup_s, window_s=rec.window_s)
        p = build_point(
            rec,
            target={"name": rec.target},
            load={"mode": "open", "rate_rps": self.rate, "schedule": "constant"},
            measured_s=self.measured_s,
            generator={"cpu_pct": self.generator_cpu_pct},
            criteria=c,
            slo_ms=slo_ms,
        )
        return {"valid": p["valid"], "reasons": p["reasons"], "outcome": p["outcome"]}


def run(
    url: str,
    body: bytes,
    rate: float,
    duration_s: float,
    client_timeout_s: float,
    headers: dict[str, str] | None = None,
    workers: int = 64,
    on_start: Callable[[float], None] | None = None,
    warmup_s: float = 0.0,
    check: Callable[[bytes], bool] | None = None,
) -> LoadResult:
    """Send `rate` req/s for `duration_s` (constant spacing) and wait for every answer; bounded by both.

    A request with no answer within `client_timeout_s` is recorded as lost (status 0), never dropped. Requests due
    in the first `warmup_s` are sent and accounted but left out of the latencies and the verdict. `check` tells a
    right answer from a wrong one (without it, answers count as unchecked, which the verdict holds against the run).
    """
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    local = threading.local()
    result = LoadResult(recorder=Recorder("reliability", warmup_s=warmup_s, window_s=1.0), rate=rate)
    result.measured_s = duration_s - warmup_s
    me = psutil.Process()
    me.cpu_percent(None)
    lock = threading.Lock()
    start = time.perf_counter()
    if on_start is not None:
        on_start(start)

    def one(scheduled: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        sent = time.perf_counter()
        status, backend, retry_after, outcome = 0, "", None, "errors"
        try:
            reply = session.post(url, data=body, headers=hdrs, timeout=client_timeout_s)
            done = time.perf_counter()
            status, backend = reply.status_code, reply.headers.get("X-Backend", "")
            retry_after = reply.headers.get("Retry-After")
            if status == 200:
                outcome = "unchecked" if check is None else "ok" if check(reply.content) else "wrong"
        except requests.RequestException:
            done, status = time.perf_counter(), 0
        with lock:
            result.samples.append(Sample(scheduled - start, done - start, status, backend, retry_after))
            assert result.recorder is not None
            result.recorder.record(scheduled, sent, done, outcome)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        for tick in pace(Schedule(rate, "constant").offsets(duration_s=duration_s), start, time.sleep):
            result.late_sends += tick.lag_s > LATE_THRESHOLD_S
            pool.submit(one, tick.scheduled)
    result.generator_cpu_pct = me.cpu_percent(None)
    result.samples.sort(key=lambda s: s.due)
    return result


def checked_digits(artifacts: Path) -> tuple[bytes, Callable[[bytes], bool]]:
    """A v2 JSON body from the exported digits sample and a check of a v2 answer against its reference logits."""
    import json

    with np.load(artifacts / "samples" / "digits.npz") as data:
        x, want = data["inputs"][:1].astype(np.float32), data["logits"][:1]

    def check(raw: bytes) -> bool:
        out = next(o for o in json.loads(raw)["outputs"] if o["name"] == "logits")
        return bool(np.allclose(np.asarray(out["data"], np.float32).reshape(want.shape), want, atol=1e-3))

    return v2.infer_json({"input": x}), check


def digits_body(rows: int = 1) -> bytes:
    """A valid v2 JSON body for `digits` (deterministic pixels, exact in float32)."""
    pixels = np.asarray([((i * 7) % 17) / 16 for i in range(64 * rows)], dtype=np.float32).reshape(rows, 1, 8, 8)
    return v2.infer_json({"input": pixels})
