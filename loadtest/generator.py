"""Load-generator health: CPU of every generator process, sampled during the run, and the late-send share.

A generator near 100 % of a core cannot release sends on time, so its latencies describe itself, not the
server; validity rejects such points. Percentages are of one core (Locust is one Python thread per process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class ProcessSamples:
    """CPU samples of one process: (perf_counter seconds, percent of one core)."""

    pid: int
    name: str
    samples: list[tuple[float, float]] = field(default_factory=list)

    def mean_after(self, t0: float) -> float:
        """Mean CPU over samples taken at or after `t0` (0 when there are none)."""
        vals = [c for t, c in self.samples if t >= t0]
        return sum(vals) / len(vals) if vals else 0.0


class GeneratorMonitor:
    """Samples the CPU of a root process and all its descendants (Locust master and workers)."""

    def __init__(self, root_pid: int | None = None, clock: Callable[[], float] = time.perf_counter):
        self.root = psutil.Process(root_pid or os.getpid())
        self.clock = clock
        self.procs: dict[int, ProcessSamples] = {}
        self._handles: dict[int, psutil.Process] = {}

    def sample(self) -> None:
        """Take one sample of every live process in the tree; new processes join on their second sample."""
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        now = self.clock()
        for p in tree:
            handle = self._handles.get(p.pid)
            try:
                if handle is None:
                    self._handles[p.pid] = p
                    p.cpu_percent(None)  # first call only primes the counter
                    self.procs[p.pid] = ProcessSamples(p.pid, " ".join(p.cmdline()[:4]) or p.name())
                    continue
                self.procs[p.pid].samples.append((now, handle.cpu_percent(None)))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def run(
        self,
        should_stop: Callable[[], bool],
        sleep: Callable[[float], object],
        interval_s: float = 1.0,
        max_samples: int = 100_000,
    ) -> None:
        """Sample every `interval_s` until `should_stop()` (bounded by `max_samples` as a safety net)."""
        for _ in range(max_samples):
            if should_stop():
                return
            self.sample()
            sleep(interval_s)

    def health(self, measured_from: float, late: int, sent: int) -> dict[str, Any]:
        """Summary for summary.json: per-process mean/max CPU over the measured phase and the late share."""
        rows: list[dict[str, Any]] = []
        for ps in self.procs.values():
            measured = [c for t, c in ps.samples if t >= measured_from]
            rows.append(
                {
                    "pid": ps.pid,
                    "name": ps.name,
                    "samples": len(measured),
                    "cpu_mean_pct": round(ps.mean_after(measured_from), 1),
                    "cpu_max_pct": round(max(measured, default=0.0), 1),
                }
            )
        return {
            "processes": rows,
            "cpu_pct": max((r["cpu_mean_pct"] for r in rows), default=0.0),
            "late_sends": late,
            "late_fraction": late / sent if sent else 0.0,
        }
