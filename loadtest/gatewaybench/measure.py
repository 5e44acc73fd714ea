"""Measuring the gateway benchmark's targets: open-loop points judged like `make bench`'s, interleaved rounds,
and the closed-loop throughput ceiling per core of each proxy against the no-op upstream."""

from __future__ import annotations

import contextlib
import random
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
from loadtest.recorder import Recorder, encode
from loadtest.schedule import Schedule
from loadtest.stats import latency_summary
from loadtest.validity import Criteria

MAX_IN_FLIGHT = 512
DIGITS_SLO_MS = 100.0
"""digits' p99 SLO in `make bench` (loadtest.bench.DEFAULT_SLO_MS): the same bar for every point here."""
Progress = Callable[[str], None]
SLICE_SEED_STEP = 1_000_000
"""Seeds of a target's later slices step by this: never a seed of another target, round or slice (< 1000 rounds)."""


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


def _own_cpu_s() -> float:
    """User + system CPU seconds of this process (the load generator), as psutil's cpu_percent counts them."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


class Recording:
    """One target's point in one round, measured in `slices` slices that all feed one recorder: one histogram,
    one set of counts and Server-Timing summaries, the proxy's CPU summed over the slices.

    The slices lie on one continuous virtual timeline (`Recorder.resume`): slice j's measured part is recorded
    as seconds [j * each, (j + 1) * each) of the point's measured phase, so the windows, keep-up, drift, the
    generator's health and the SLO verdict of loadtest.validity judge the whole as they judge one contiguous
    point. A Poisson process restarted at each slice (each with its own seed) is still a Poisson process on that
    timeline. Each slice starts with an unrecorded burst at the same rate (`slice_warmup_s`, at least the
    criteria's warm-up for the first slice), so a proxy that sat idle while other targets ran is warm again before
    anything is recorded. With one slice this is today's point: the criteria's warm-up, then the measured phase.
    """

    def __init__(
        self,
        target: Target,
        rate: float,
        criteria: Criteria,
        slo_ms: float,
        slices: int = 1,
        slice_warmup_s: float = 0.0,
    ) -> None:
        self.target, self.rate, self.criteria, self.slo_ms = target, rate, criteria, slo_ms
        self.slices, self.slice_warmup_s = slices, slice_warmup_s
        self.measured = criteria.measured_s(rate)
        self.each = self.measured / slices
        self.rec: Recorder | None = None
        self.seeds: list[int] = []
        self.generator_cpu_s = self.wall_s = 0.0
        self.proxy_s: float | None = 0.0 if target.pid else None

    def _warmup(self, j: int) -> float:
        if self.slices == 1:
            return self.criteria.warmup_s
        return max(self.criteria.warmup_s, self.slice_warmup_s) if j == 0 else self.slice_warmup_s

    async def slice(self, seed: int) -> None:
        """Measure the next slice: its warm burst, then `each` seconds recorded, Poisson seeded with `seed`."""
        j, warm = len(self.seeds), self._warmup(len(self.seeds))
        if self.rec is None:  # created at the first send: its epoch is where the point's timeline starts
            self.rec = Recorder(self.target.name, warmup_s=self.criteria.warmup_s, window_s=self.criteria.window_s)
        cpu0, wall0 = _own_cpu_s(), time.monotonic()
        proxy0 = _cpu_s(self.target.pid) if self.target.pid else 0.0
        offsets = Schedule(self.rate, "poisson", seed).offsets(duration_s=warm + self.each)
        start = time.perf_counter()
        if self.slices > 1:
            self.rec.resume(start + warm, j * self.each)
        await adrive.run_open_loop(self.target.send, offsets, self.rec, start=start, max_in_flight=MAX_IN_FLIGHT)
        if self.proxy_s is not None and self.target.pid:
            self.proxy_s += _cpu_s(self.target.pid) - proxy0
        self.generator_cpu_s += _own_cpu_s() - cpu0
        self.wall_s += time.monotonic() - wall0
        self.seeds.append(seed)

    def point(self) -> dict[str, Any]:
        """The point of every slice measured, sized and judged by the criteria as `make bench` judges."""
        if self.rec is None:
            raise RuntimeError(f"{self.target.name}: no slice measured")
        rec, t = self.rec, self.target
        load = {"mode": "open", "rate_rps": round(self.rate, 3), "schedule": "poisson", "seed": self.seeds[0]}
        cpu_pct = round(self.generator_cpu_s / self.wall_s * 100, 1) if self.wall_s > 0 else 0.0
        p = build_point(
            rec,
            target={"name": t.name, "group": t.group, "baseline": t.baseline or ""},
            load=load,
            measured_s=self.measured,
            generator={"cpu_pct": cpu_pct},
            criteria=self.criteria,
            slo_ms=self.slo_ms,
        )
        p["server_timing_ms"] = {name: latency_summary(h) for name, h in rec.totals.timings.items()}
        p["histogram"] = encode(rec.totals.from_schedule)  # pooled over the rounds by report.pooled_latency
        every = rec.totals.counts["sent"] + rec.totals.counts["warmup"]  # the proxy's CPU covers the warm-ups too
        proxy = self.proxy_s
        p["proxy_cpu_ms_per_request"] = round(proxy * 1000 / every, 4) if proxy is not None and every else None
        if self.slices > 1:
            p["slices"] = {
                "count": self.slices,
                "measured_s_each": round(self.each, 3),
                "warmup_s_each": self.slice_warmup_s,
                "first_warmup_s": self._warmup(0),
                "seeds": list(self.seeds),
            }
        return p


async def point(target: Target, rate: float, criteria: Criteria, seed: int, slo_ms: float) -> dict[str, Any]:
    """One open-loop point at `rate` (Poisson, seeded), sized and judged by `criteria` as `make bench` judges."""
    r = Recording(target, rate, criteria, slo_ms)
    await r.slice(seed)
    return r.point()


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


def cycle_orders(targets: list[Target], group: str, round_: int, slices: int) -> list[list[Target]]:
    """The order of the targets in each of a round's `slices` cycles: as given with one slice; else shuffled per
    cycle by an RNG seeded from the group and the round (reproducible), never the same target twice in a row
    across a cycle's boundary, so every slice of a target is separated by other targets' slices."""
    if slices == 1:
        return [list(targets)]
    rng = random.Random(f"{group}/{round_}")
    out: list[list[Target]] = []
    for _ in range(slices):
        cycle = list(targets)
        rng.shuffle(cycle)
        if out and len(cycle) > 1 and cycle[0] is out[-1][-1]:
            cycle[0], cycle[1] = cycle[1], cycle[0]
        out.append(cycle)
    return out


def slice_seed(round_: int, index: int, slice_: int) -> int:
    """The Poisson seed of a slice: `index` is the target's place in the round's rotated order; slice 0 keeps the
    seed a whole point had before slicing (1000 * round + index), later slices a distinct one each."""
    return 1000 * round_ + index + SLICE_SEED_STEP * slice_


async def rounds(
    groups: list[Group],
    criteria: Criteria,
    n: int,
    fraction: float,
    probe_s: float,
    progress: Progress,
    spy: Callable[[Target, str], contextlib.AbstractContextManager[None]] | None = None,
    slices: int = 1,
    slice_warmup_s: float = 0.5,
) -> list[dict[str, Any]]:
    """`n` rounds over every group's targets, the order rotated each round so no target always runs first.

    With `slices` > 1 a round is that many cycles, each giving every target of the group one slice of its point
    (`Recording`), in an order shuffled per cycle (`cycle_orders`): a hop and the direct path it is subtracted
    from are then measured interleaved over the whole round, so the machine's drift within minutes falls on both
    alike instead of on whichever ran in the slower minute.
    """
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
            order = g.targets[k:] + g.targets[:k]
            index = {t.name: i for i, t in enumerate(order)}
            recs = {t.name: Recording(t, g.rate, criteria, DIGITS_SLO_MS, slices, slice_warmup_s) for t in order}
            for c, cycle in enumerate(cycle_orders(order, g.name, r, slices)):
                if slices > 1:
                    progress(f"  round {r} cycle {c + 1}/{slices}: " + " ".join(t.name for t in cycle))
                for t in cycle:
                    with spy(t, str(r) if slices == 1 else f"{r}.{c}") if spy else contextlib.nullcontext():
                        await recs[t.name].slice(slice_seed(r, index[t.name], c))
                    if c < slices - 1:
                        continue
                    p = recs[t.name].point()
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
