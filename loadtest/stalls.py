"""Platform stall meter: when did the machine itself stop the load generator's CPU?

On a virtual machine the hypervisor can take a vCPU away for tens of milliseconds (steal time); on this
project's 2-core reference box a bare spin loop loses 10-19 % of its time that way, in stalls of 10-50 ms.
A send scheduled inside such a stall goes out late whatever the generator does, so "< 1 % of sends late"
would judge the platform, not the generator. This meter tells the two apart, in the manner of jHiccup:

- one process per generator CPU, pinned to that CPU at a real-time priority *above* the generator's, wakes
  every `period_s` and records each wake-up that came more than `threshold_s` late as a stall
  `[expected wake, actual wake]` (the conservative part of the gap: the stall may have begun earlier);
- since nothing in user space can delay it (it outranks the generator, and the servers run at normal
  priority), what delays it is the platform: hypervisor steal, interrupts, kernel work;
- a late send is explained by the platform when its lag minus the stall time overlapping it is within the
  late threshold (`attribute`); only the rest counts against the generator.

Attribution is offered only when the meter really ran pinned at real-time priority (`trusted`); otherwise a
busy server could delay the meter too, and every late send stays the generator's.

    python -m loadtest.stalls --cpu 1 --out /tmp/stalls.json --max-s 60     # stops on SIGTERM or after max-s

Times are `time.perf_counter()` seconds, which on Linux is CLOCK_MONOTONIC: one clock for all processes.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from loadtest.schedule import LATE_THRESHOLD_S

PERIOD_S = 0.0005
"""How often the meter wakes (a stall shorter than this may go unseen; the threshold is 1 ms anyway)."""
THRESHOLD_S = 0.0002
"""A wake-up later than this counts as a stall."""
MAX_STALLS = 200_000
"""Cap on recorded stalls (an hour of a stall every 20 ms); past it the meter counts but stops recording."""


@dataclass
class Stalls:
    """What one meter saw on one CPU."""

    cpu: int
    priority: str
    pinned: bool
    started: float
    ended: float
    intervals: list[tuple[float, float]] = field(default_factory=list)
    missed: int = 0
    """Stalls past MAX_STALLS, counted but not recorded."""

    @property
    def trusted(self) -> bool:
        """Whether its stalls can only be the platform's (pinned, real-time, nothing lost)."""
        return self.pinned and self.priority.startswith("SCHED_FIFO") and self.missed == 0

    def stalled_s(self, start: float, end: float) -> float:
        """Total stall time inside [start, end]."""
        return overlap(self.intervals, start, end)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (what the meter writes)."""
        return {
            "cpu": self.cpu,
            "priority": self.priority,
            "pinned": self.pinned,
            "started": self.started,
            "ended": self.ended,
            "intervals": self.intervals,
            "missed": self.missed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stalls:
        """Inverse of `as_dict`."""
        return cls(
            int(d["cpu"]),
            str(d["priority"]),
            bool(d["pinned"]),
            float(d["started"]),
            float(d["ended"]),
            [(float(a), float(b)) for a, b in d["intervals"]],
            int(d.get("missed", 0)),
        )


def overlap(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Length of [start, end] covered by sorted, disjoint `intervals`."""
    if end <= start or not intervals:
        return 0.0
    i = max(0, bisect.bisect_right(intervals, (start, float("inf"))) - 1)
    total = 0.0
    while i < len(intervals) and intervals[i][0] < end:
        a, b = intervals[i]
        total += max(0.0, min(b, end) - max(a, start))
        i += 1
    return total


def common(meters: Sequence[Stalls]) -> list[tuple[float, float]]:
    """Stall intervals seen on *every* meter at once: with several generator CPUs a send's own CPU is not
    known, so only a stall of all of them is certain to have stopped it."""
    if not meters:
        return []
    out = list(meters[0].intervals)
    for m in meters[1:]:
        out = _intersect(out, m.intervals)
    return out


def _intersect(xs: Sequence[tuple[float, float]], ys: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlaps of two sorted lists of disjoint intervals, in one pass over both."""
    out: list[tuple[float, float]] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        lo, hi = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if lo < hi:
            out.append((lo, hi))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass(frozen=True)
class Attribution:
    """How many late sends the platform explains, and how much of the measured phase it stalled."""

    late: int
    explained: int
    stall_fraction: float
    longest_stall_ms: float

    @property
    def unexplained(self) -> int:
        """Late sends the generator answers for."""
        return self.late - self.explained


def attribute(
    late_log: Iterable[tuple[float, float]],
    stalls: Sequence[tuple[float, float]],
    measured: tuple[float, float],
    threshold_s: float = LATE_THRESHOLD_S,
) -> Attribution:
    """Split late sends (scheduled, sent) into platform-explained and the generator's own.

    A send is explained when its lag minus the stall time inside [scheduled, sent] is within `threshold_s`:
    had the platform not stalled, it would have been on time.
    """
    late = explained = 0
    for scheduled, sent in late_log:
        late += 1
        if (sent - scheduled) - overlap(stalls, scheduled, sent) <= threshold_s:
            explained += 1
    t0, t1 = measured
    inside = [(max(a, t0), min(b, t1)) for a, b in stalls if b > t0 and a < t1]
    span = t1 - t0
    return Attribution(
        late,
        explained,
        sum(b - a for a, b in inside) / span if span > 0 else 0.0,
        max((b - a for a, b in inside), default=0.0) * 1000,
    )


def steal_ticks(cpus: Iterable[int]) -> int:
    """Hypervisor steal of the given CPUs so far, in clock ticks (/proc/stat; 0 where unavailable)."""
    wanted = {f"cpu{c}" for c in cpus}
    total = 0
    with contextlib.suppress(OSError), open("/proc/stat", encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in wanted and len(parts) > 8:
                total += int(parts[8])
    return total


def ticks_per_s() -> int:
    """The kernel's USER_HZ (the unit of /proc/stat)."""
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError):
        return 100


def _realtime(priority: int) -> str:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return f"SCHED_FIFO {priority}"
    except (OSError, AttributeError):
        return "normal"


def measure(
    cpu: int, priority: int, max_s: float, period_s: float = PERIOD_S, threshold_s: float = THRESHOLD_S
) -> Stalls:
    """Run the meter in this process until SIGTERM/SIGINT or `max_s`; return what it saw."""
    pinned = True
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, AttributeError):
        pinned = False
    prio = _realtime(priority)
    stop = [False]

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    clock, sleep = time.perf_counter, time.sleep
    started = clock()
    out = Stalls(cpu, prio, pinned, started, started)
    intervals, missed = out.intervals, 0
    deadline = started + max_s
    expected = started
    while not stop[0]:
        expected = clock() + period_s
        sleep(period_s)
        woke = clock()
        if woke - expected > threshold_s:
            if len(intervals) < MAX_STALLS:
                intervals.append((expected, woke))
            else:
                missed += 1
        if woke >= deadline:
            break
    out.ended, out.missed = clock(), missed
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: measure, then write the stalls as JSON to --out."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.stalls", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", type=int, required=True, help="the CPU to watch (the meter pins itself to it)")
    ap.add_argument("--priority", type=int, default=2, help="SCHED_FIFO priority; must outrank the generator's")
    ap.add_argument("--max-s", type=float, default=600.0, help="stop after this many seconds at the latest")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    stalls = measure(args.cpu, args.priority, args.max_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stalls.as_dict()), encoding="utf-8")
    return 0


class Meters:
    """One meter process per generator CPU for the length of a point: `start()`, run the point, `stop()`."""

    def __init__(self, cpus: Sequence[int], out_dir: Path, priority: int, max_s: float):
        self.cpus = list(cpus)
        self.out_dir = out_dir
        self.priority = priority
        self.max_s = max_s
        self.procs: list[tuple[int, subprocess.Popen[bytes]]] = []

    def path(self, cpu: int) -> Path:
        """Where the meter of `cpu` writes."""
        return self.out_dir / f"stalls-cpu{cpu}.json"

    def start(self) -> None:
        """Launch the meters (they need a moment to pin themselves; start them before the point)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for cpu in self.cpus:
            cmd = [sys.executable, "-m", "loadtest.stalls", "--cpu", str(cpu), "--priority", str(self.priority)]
            cmd += ["--max-s", f"{self.max_s:g}", "--out", str(self.path(cpu))]
            self.procs.append((cpu, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

    def stop(self, timeout_s: float = 5.0) -> list[Stalls]:
        """Stop the meters and read what each saw (a meter that wrote nothing is left out)."""
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        out = []
        for cpu, p in self.procs:
            try:
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=timeout_s)
            with contextlib.suppress(OSError, ValueError, KeyError):
                out.append(Stalls.from_dict(json.loads(self.path(cpu).read_text(encoding="utf-8"))))
        self.procs = []
        return out


if __name__ == "__main__":
    raise SystemExit(main())
