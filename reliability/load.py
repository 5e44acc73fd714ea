"""An accounted open-loop driver: every request sent ends as ok, an explicit error, or lost (none may be lost).

Sends follow `loadtest.schedule.Schedule` (constant rate); latency counts from the scheduled time and goes
into a `loadtest.recorder.Recorder` (HdrHistogram), so a stall cannot hide behind a slowed generator.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import requests

from contract import v2
from loadtest.recorder import Recorder
from loadtest.schedule import Schedule


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


def run(
    url: str,
    body: bytes,
    rate: float,
    duration_s: float,
    client_timeout_s: float,
    headers: dict[str, str] | None = None,
    workers: int = 64,
    on_start: Callable[[float], None] | None = None,
) -> LoadResult:
    """Send `rate` req/s for `duration_s` (constant spacing) and wait for every answer; bounded by both.

    A request with no answer within `client_timeout_s` is recorded as lost (status 0), never dropped.
    """
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    local = threading.local()
    result = LoadResult(recorder=Recorder("reliability", window_s=1.0))
    lock = threading.Lock()
    start = time.perf_counter()
    if on_start is not None:
        on_start(start)

    def one(scheduled: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        sent = time.perf_counter()
        status, backend, retry_after = 0, "", None
        try:
            reply = session.post(url, data=body, headers=hdrs, timeout=client_timeout_s)
            status, backend = reply.status_code, reply.headers.get("X-Backend", "")
            retry_after = reply.headers.get("Retry-After")
        except requests.RequestException:
            status = 0
        done = time.perf_counter()
        with lock:
            result.samples.append(Sample(scheduled - start, done - start, status, backend, retry_after))
            assert result.recorder is not None
            result.recorder.record(scheduled, sent, done, "unchecked" if status == 200 else "errors")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        for offset in Schedule(rate, "constant").offsets(duration_s=duration_s):
            due = start + offset
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            elif -pause > 0.001:
                result.late_sends += 1
            pool.submit(one, due)
    result.samples.sort(key=lambda s: s.due)
    return result


def digits_body(rows: int = 1) -> bytes:
    """A valid v2 JSON body for `digits` (deterministic pixels, exact in float32)."""
    pixels = np.asarray([((i * 7) % 17) / 16 for i in range(64 * rows)], dtype=np.float32).reshape(rows, 1, 8, 8)
    return v2.infer_json({"input": pixels})
