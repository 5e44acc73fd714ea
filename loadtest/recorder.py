"""Full-resolution latency recording: HdrHistograms from the scheduled and the actual send, per window.

Values are integer microseconds from 1 µs to 60 s at 3 significant digits. Snapshots encode every histogram
in HdrHistogram's standard compressed base64 form, so Locust workers can ship them to the master, which
decodes and adds them: merged percentiles are exact, never averages of percentiles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtest.schedule import LATE_THRESHOLD_S

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
COUNTERS = ("sent", "ok", "errors", "wrong", "checked", "late", "warmup", "dropped", "overflow", "due")
"""ok/errors/wrong partition completed measured requests (windowed by completion); checked counts answers
compared with the reference; late/dropped count sends; warmup counts requests excluded as warm-up; due counts
requests by the window they were *scheduled* in (the offered load the stability check compares with)."""
MAX_LATE_LOG = 100_000
"""Late sends kept with their times (for platform-stall attribution, loadtest/stalls.py); more are only counted."""


def new_histogram() -> HdrHistogram:
    """An empty histogram with the harness-wide range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def encode(h: HdrHistogram) -> str:
    """The standard compressed base64 ("HISTFAAA...") form of `h`."""
    return h.encode().decode("ascii")


def decode(payload: str) -> HdrHistogram:
    """Inverse of `encode`."""
    return HdrHistogram.decode(payload.encode("ascii"))


def _add(into: HdrHistogram, payload: str) -> None:
    if payload:
        into.add(decode(payload))


@dataclass
class Window:
    """Requests completed in one fixed interval of the measured phase."""

    from_schedule: HdrHistogram = field(default_factory=new_histogram)
    from_send: HdrHistogram = field(default_factory=new_histogram)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    timings: dict[str, HdrHistogram] = field(default_factory=dict)
    """Server-reported durations (`Server-Timing`: gateway, upstream) of successful measured requests;
    kept in the totals only."""


class Recorder:
    """Records one target's requests; times are `time.perf_counter()` seconds, windows align on `epoch`.

    `epoch` is a shared wall-clock start (seconds since the Unix epoch) so windows from different
    processes line up when merged; requests scheduled before `epoch + warmup_s` are counted but excluded.
    """

    def __init__(self, target: str, epoch: float | None = None, warmup_s: float = 0.0, window_s: float = 5.0):
        self.target = target
        self.epoch = time.time() if epoch is None else epoch
        self.warmup_s = warmup_s
        self.window_s = window_s
        self._perf_to_wall = time.time() - time.perf_counter()
        self._resumed_at: float | None = None
        self.totals = Window()
        self.windows: dict[int, Window] = {}
        self.late_log: list[tuple[float, float]] = []
        """(scheduled, sent) of measured late sends, `time.perf_counter()` seconds (CLOCK_MONOTONIC on Linux,
        so comparable across processes)."""

    def _since_epoch(self, perf_t: float) -> float:
        return perf_t + self._perf_to_wall - self.epoch

    def _window(self, perf_t: float) -> Window:
        idx = math.floor((self._since_epoch(perf_t) - self.warmup_s) / self.window_s)
        win = self.windows.get(idx)
        if win is None:
            win = self.windows[idx] = Window()
        return win

    def resume(self, at: float, measured_s: float) -> None:
        """Continue the measured phase at `time.perf_counter()` time `at`, `measured_s` seconds into it: requests
        scheduled before `at` count as warm-up, later ones land in the windows from `measured_s` on. Slices of one
        point measured apart (loadtest.gatewaybench.measure) are so recorded on one continuous timeline; call it
        only between slices, with nothing of the last one in flight."""
        self._perf_to_wall = self.epoch + self.warmup_s + measured_s - at
        self._resumed_at = at

    def count(self, name: str, n: int = 1) -> None:
        """Bump a counter that has no latency (e.g. `dropped` when the in-flight cap is hit)."""
        self.totals.counts[name] += n

    def record(
        self,
        scheduled: float,
        sent: float,
        done: float,
        outcome: str,
        timings: dict[str, float] | None = None,
    ) -> None:
        """Record one completed request. `outcome`: 'ok' (answer checked and right), 'wrong' (checked, wrong),
        'unchecked' (succeeded, answer not compared: counts as ok but not as checked) or 'errors'.
        `timings`: durations in ms the server reported for it (`Server-Timing`), name -> ms.
        """
        checked = outcome in ("ok", "wrong")
        if outcome == "unchecked":
            outcome = "ok"
        before_slice = self._resumed_at is not None and scheduled < self._resumed_at
        if before_slice or self._since_epoch(scheduled) < self.warmup_s:
            self.totals.counts["warmup"] += 1
            return
        self._window(scheduled).counts["due"] += 1
        self.totals.counts["due"] += 1
        win = self._window(done)
        late = sent - scheduled > LATE_THRESHOLD_S
        if late and len(self.late_log) < MAX_LATE_LOG:
            self.late_log.append((scheduled, sent))
        for part in (self.totals, win):
            part.counts["sent"] += 1
            part.counts[outcome] += 1
            part.counts["late"] += late
            part.counts["checked"] += checked
        if outcome != "ok":
            return
        for hist, start in (("from_schedule", scheduled), ("from_send", sent)):
            us = max(LOWEST_US, round((done - start) * 1e6))
            if us > HIGHEST_US:
                us = HIGHEST_US
                self.totals.counts["overflow"] += 1
            getattr(self.totals, hist).record_value(us)
            getattr(win, hist).record_value(us)
        for name, ms in (timings or {}).items():
            h = self.totals.timings.get(name)
            if h is None:
                h = self.totals.timings[name] = new_histogram()
            h.record_value(min(HIGHEST_US, max(LOWEST_US, round(ms * 1000))))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable, cumulative picture of everything recorded (histograms base64-encoded)."""
        return {
            "target": self.target,
            "epoch": self.epoch,
            "warmup_s": self.warmup_s,
            "window_s": self.window_s,
            "totals": _dump(self.totals),
            "windows": {str(i): _dump(w) for i, w in sorted(self.windows.items())},
            "late_log": [list(pair) for pair in self.late_log],
        }

    @classmethod
    def merge(cls, snapshots: Iterable[dict[str, Any]]) -> Recorder:
        """Decode and add snapshots from several processes into one recorder (windows matched by index)."""
        snaps = list(snapshots)
        if not snaps:
            raise ValueError("nothing to merge")
        first = snaps[0]
        out = cls(first["target"], first["epoch"], first["warmup_s"], first["window_s"])
        for snap in snaps:
            if snap["window_s"] != out.window_s or snap["target"] != out.target:
                raise ValueError("snapshots disagree on target or window length; they cannot be merged")
            _load_into(out.totals, snap["totals"])
            for key, w in snap["windows"].items():
                _load_into(out.windows.setdefault(int(key), Window()), w)
            room = MAX_LATE_LOG - len(out.late_log)
            out.late_log.extend((float(a), float(b)) for a, b in snap.get("late_log", [])[:room])
        out.late_log.sort()
        return out


def _dump(w: Window) -> dict[str, Any]:
    out = {
        "from_schedule": encode(w.from_schedule),
        "from_send": encode(w.from_send),
        "counts": dict(w.counts),
    }
    if w.timings:
        out["timings"] = {name: encode(h) for name, h in w.timings.items()}
    return out


def _load_into(w: Window, data: dict[str, Any]) -> None:
    _add(w.from_schedule, data["from_schedule"])
    _add(w.from_send, data["from_send"])
    for name, payload in data.get("timings", {}).items():
        _add(w.timings.setdefault(name, new_histogram()), payload)
    for k, v in data["counts"].items():
        w.counts[k] = w.counts.get(k, 0) + int(v)
