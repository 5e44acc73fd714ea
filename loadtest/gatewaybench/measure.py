"""Measuring the gateway benchmark's targets: open-loop points judged like `make bench`'s, interleaved rounds,
and the closed-loop throughput ceiling per core of each proxy against the no-op upstream."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from loadtest import adrive
from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.schedule import Schedule
from loadtest.stats import latency_summary
from loadtest.validity import Criteria

MAX_IN_FLIGHT = 512
DIGITS_SLO_MS = 100.0
"""digits' p99 SLO in `make bench` (loadtest.bench.DEFAULT_SLO_MS): the same bar for every point here."""
Progress = Callable[[str], None]


@dataclass
class Target:
    """One path to time: how to send one request, and the direct path it adds a hop to (None: it is direct)."""

    name: str
    group: str
    send: adrive.ASend
    baseline: str | None = None
    pid: int | None = None
    """The proxy process its requests pass through, whose CPU per request the point reports (None: direct)."""


@dataclass
class Group:
    """Targets measured at one rate: fixed, or `fraction` of the closed-loop capacity `probe` shows."""

    name: str
    targets: list[Target]
    rate: float = 0.0
    probe: adrive.ASend | None = None
    capacity: float | None = None


@dataclass
class Ceiling:
    """A closed-loop run through one proxy to the no-op upstream; `pid` is the process whose CPU is counted."""

    name: str
    send: adrive.ASend
    pid: int
    results: list[dict[str, Any]] = field(default_factory=list)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


async def point(target: Target, rate: float, criteria: Criteria, seed: int, slo_ms: float) -> dict[str, Any]:
    """One open-loop point at `rate` (Poisson, seeded), sized and judged by `criteria` as `make bench` judges."""
    measured = criteria.measured_s(rate)
    rec = Recorder(target.name, warmup_s=criteria.warmup_s, window_s=criteria.window_s)
    me = psutil.Process()
    me.cpu_percent(None)
    proxy0 = _cpu_s(target.pid) if target.pid else 0.0
    offsets = Schedule(rate, "poisson", seed).offsets(duration_s=criteria.warmup_s + measured)
    await adrive.run_open_loop(target.send, offsets, rec, start=time.perf_counter(), max_in_flight=MAX_IN_FLIGHT)
    proxy_s = _cpu_s(target.pid) - proxy0 if target.pid else None
    load = {"mode": "open", "rate_rps": round(rate, 3), "schedule": "poisson", "seed": seed}
    p = build_point(
        rec,
        target={"name": target.name, "group": target.group, "baseline": target.baseline or ""},
        load=load,
        measured_s=measured,
        generator={"cpu_pct": me.cpu_percent(None)},
        criteria=criteria,
        slo_ms=slo_ms,
    )
    p["server_timing_ms"] = {name: latency_summary(h) for name, h in rec.totals.timings.items()}
    every = rec.totals.counts["sent"] + rec.totals.counts["warmup"]  # the proxy's CPU covers the warm-up too
    p["proxy_cpu_ms_per_request"] = round(proxy_s * 1000 / every, 4) if proxy_s is not None and every else None
    return p


@contextlib.contextmanager
def profiled(out: Path | None, pid: int | None, name: str, rate_hz: int = 200) -> Iterator[None]:
    """py-spy (pinned in requirements/dev.txt) records `pid` while the block runs: a flame graph per point."""
    if out is None or pid is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    file = out / (name.replace(">", "").replace("@", "_") + ".txt")
    argv = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--rate", str(rate_hz)]
    argv += ["--format", "raw", "--output", str(file), "--nonblocking", "--subprocesses"]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)


async def rounds(
    groups: list[Group],
    criteria: Criteria,
    n: int,
    fraction: float,
    probe_s: float,
    progress: Progress,
    spy: Callable[[Target, int], contextlib.AbstractContextManager[None]] | None = None,
) -> list[dict[str, Any]]:
    """`n` rounds over every group's targets, the order rotated each round so no target always runs first."""
    for g in groups:
        if g.probe is not None and not g.rate:
            g.capacity = await adrive.run_closed_loop(g.probe, 8, probe_s) / probe_s
            g.rate = g.capacity * fraction
        progress(f"{g.name}: {g.rate:.0f} req/s" + (f" (capacity {g.capacity:.0f} req/s)" if g.capacity else ""))
    for g in groups:  # one unrecorded point first: the generator's first seconds run late and would skew round 0
        warm = replace(criteria, warmup_s=0.0, min_duration_s=criteria.window_s, min_requests=1)
        await point(g.targets[-1], g.rate, warm, seed=999_999, slo_ms=DIGITS_SLO_MS)
    points = []
    for r in range(n):
        for g in groups:
            k = r % len(g.targets)
            for i, t in enumerate(g.targets[k:] + g.targets[:k]):
                with spy(t, r) if spy else contextlib.nullcontext():
                    p = await point(t, g.rate, criteria, seed=1000 * r + i, slo_ms=DIGITS_SLO_MS)
                p["round"], p["capacity_rps"] = r, g.capacity
                points.append(p)
                lat = p["latency_ms"]["from_schedule"]
                verdict = "VALID" if p["valid"] else "INVALID: " + "; ".join(p["reasons"])
                progress(f"  round {r} {t.name}: p50 {lat['p50']} p99 {lat['p99']} ms, {verdict}")
    return points


async def ceiling(c: Ceiling, seconds: float, concurrency: int) -> dict[str, Any]:
    """Closed loop for `seconds`: requests/s achieved and requests per CPU-second of `c.pid` (per core)."""
    cpu0, t0 = _cpu_s(c.pid), time.perf_counter()
    done = await adrive.run_closed_loop(c.send, concurrency, seconds)
    wall, cpu = time.perf_counter() - t0, _cpu_s(c.pid) - cpu0
    row = {
        "target": c.name,
        "concurrency": concurrency,
        "requests": done,
        "rps": round(done / wall, 1),
        "proxy_cores": round(cpu / wall, 3),
        "rps_per_core": round(done / cpu, 1) if cpu > 0 else None,
        "cpu_ms_per_request": round(cpu * 1000 / done, 4) if done else None,
    }
    c.results.append(row)
    return row
