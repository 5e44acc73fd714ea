"""Run one point: its PointSpec as a Locust command line, the subprocess, its CPU and stalls, the merged result."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from loadtest import affinity
from loadtest.generator import GeneratorMonitor
from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.resources import ResourceMeter
from loadtest.servermetrics import Scraper
from loadtest.spec import DEFAULT_TIMEOUT_S, PointSpec
from loadtest.stalls import Meters, Stalls, attribute, common, steal_ticks, ticks_per_s
from loadtest.stats import latency_summary, write_hlogs
from loadtest.targets import Target
from loadtest.validity import Criteria

console = Console(stderr=True)


@dataclass(frozen=True)
class Harness:
    """How every point of a run is driven, as its command line chose once: where the samples and the stack's
    key are, the request timeout, how many Locust processes, and how they are scheduled."""

    artifacts: Path = Path("artifacts")
    run_dir: Path = Path("run")
    timeout_s: float = DEFAULT_TIMEOUT_S
    processes: int = 1
    priority: str = "auto"

    def spec(self, t: Target, load: dict[str, Any], criteria: Criteria, out: Path) -> PointSpec:
        """The PointSpec of one point (`load` as summary.json keeps it, measured as long as `criteria` want)."""
        return PointSpec.of(
            t, load, criteria, timeout_s=self.timeout_s, artifacts=self.artifacts, run_dir=self.run_dir, out=out
        )


def locust_command(spec: PointSpec, processes: int = 1) -> list[str]:
    """The Locust command line of one point (one user per process; -t is only a safety cap)."""
    t = spec.target
    user = "GrpcUser" if t.protocol == "grpc" else "RestUser"
    n = str(processes)
    cmd = [sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")), user]
    cmd += ["--headless", "--only-summary", "--skip-log-setup", "-u", n, "-r", n, "--stop-timeout", "5"]
    cmd += ["-t", f"{int(spec.warmup_s + spec.duration_s + spec.timeout_s + 30)}s"]
    cmd += ["-H", t.address if t.protocol == "rest" else "http://grpc"]  # Locust wants a URL; gRPC users ignore it
    if spec.out is not None:  # Locust's own statistics beside ours (2-digit percentiles: never the headline)
        cmd += ["--csv", str(spec.out.parent.parent / "csv" / spec.out.stem)]
    cmd += spec.argv()
    if processes > 1:
        cmd += ["--processes", n]
    return cmd


def reachable(t: Target, timeout_s: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the target's port (loopback by default)."""
    try:
        with socket.create_connection((t.host, t.port), timeout=timeout_s):
            return True
    except OSError:
        return False


def point_name(t: Target, load: dict[str, Any], tag: str = "") -> str:
    """File-name-safe name of one point: '<target>-<rate or c<n>>[-tag]'."""
    how = f"{load['rate_rps']:g}" if load.get("rate_rps") is not None else f"c{load.get('concurrency')}"
    return f"{t.id.replace(':', '-')}-{how}" + (f"-{tag}" if tag else "")


GENERATOR_RT_PRIORITY = 1
GENERATOR_NICE = -5
METER_RT_PRIORITY = GENERATOR_RT_PRIORITY + 1  # the stall meter must outrank the generator it watches


def generator_cpus(processes: int) -> list[int]:
    """The CPUs the generator is pinned to: the last `processes` this process may use (at least one)."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[-max(1, min(processes, len(allowed))) :]


def pin(pid: int, cpus: list[int]) -> bool:
    """Pin `pid`, every thread of it (before it forks its workers, which inherit it), to `cpus`; False when not
    permitted."""
    if not hasattr(os, "sched_setaffinity"):  # not Linux
        return False
    procs = affinity.tree(pid)
    affinity.Pins().pin(procs, cpus)
    return bool(procs) and not affinity.strays(procs, cpus)


def platform_health(
    meters: list[Stalls],
    cpus: list[int],
    pinned: bool,
    late_log: list[tuple[float, float]],
    measured: tuple[float, float],
) -> dict[str, Any]:
    """How much the platform stalled the generator's CPUs, and which late sends that explains.

    Explanations count only when every meter ran pinned at real-time priority and the generator was pinned
    to the watched CPUs (loadtest/stalls.py says why); otherwise every late send stays the generator's.
    """
    trusted = pinned and bool(meters) and len(meters) == len(cpus) and all(m.trusted for m in meters)
    stalls = common(meters)
    att = attribute(late_log, stalls, measured)
    return {
        "cpus": cpus,
        "meter": ", ".join(sorted({m.priority for m in meters})) or "not running",
        "trusted": trusted,
        "stall_fraction": round(att.stall_fraction, 6),
        "longest_stall_ms": round(att.longest_stall_ms, 3),
        "late_explained": att.explained if trusted else 0,
    }


PRIORITIES = ("auto", "nice", "fifo", "normal")
"""How the generator is scheduled: `auto` (default) `fifo` for REST targets and `nice` for gRPC ones; `nice`
nice -5; `fifo` SCHED_FIFO 1 where permitted; `normal`."""


def priority_for(t: Target, how: str) -> str:
    """`how`, with `auto` resolved: SCHED_FIFO only where the pacer sleeps between sends (REST, the timerfd pacer).

    A real-time generator that spins takes its CPU from the servers all the time (the gRPC user's pacer spins,
    loadtest/users/grpc_user.py); one that sleeps takes only the CPU its sends need, and wakes on time: measured
    on the reference VM, TorchServe REST direct at 3,200 req/s had 6.0 % of its sends late under the sleeping
    pacer at nice -5, and 0.2 % at SCHED_FIFO (docs/benchmark-results.md)."""
    if how != "auto":
        return how
    return "fifo" if t.protocol == "rest" else "nice"


def prioritise(pid: int, how: str = "nice") -> str:
    """Give the Locust process (and the workers it forks) the CPU on time, as far as `how` asks and this user may.

    nice -5 weighs the generator about 3x a normal process in the kernel's fair scheduler, so it wakes close to
    schedule without taking the CPU from the servers it measures. SCHED_FIFO wakes it within microseconds, but a
    real-time generator pre-empts the servers on its CPU whenever it runs: with the spinning pacer of the time,
    TorchServe answered 10 % of 1,600 req/s with 503 and a 258 ms p99 under a SCHED_FIFO generator, and 0 errors
    with an 11 ms p99 under a normal one (see `priority_for` for when it pays). Lateness is measured and judged
    either way. Returns what was applied.
    """
    if how == "fifo":
        try:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(GENERATOR_RT_PRIORITY))
            return f"SCHED_FIFO {GENERATOR_RT_PRIORITY}"
        except (OSError, AttributeError):
            how = "nice"
    if how == "nice":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, GENERATOR_NICE)
            return f"nice {GENERATOR_NICE}"
    return "normal"


def run_point(
    t: Target,
    load: dict[str, Any],
    c: Criteria,
    run_dir: Path,
    harness: Harness,
    progress: Progress,
    scraper: Scraper | None = None,
    tag: str = "",
    slo_ms: float | None = None,
    meter: ResourceMeter | None = None,
) -> dict[str, Any] | None:
    """Run one point in a Locust subprocess, sampling its CPU, (with `scraper`) the server's own counters and
    (with `meter`) the services' process trees once a second; returns the summary.json entry (with `slo_ms`,
    judged against that p99 SLO)."""
    name = point_name(t, load, tag)
    out = run_dir / "points" / f"{name}.json"
    spec = harness.spec(t, load, c, out)
    cmd = locust_command(spec, harness.processes)
    measured_s = spec.duration_s
    cap = c.warmup_s + measured_s + spec.timeout_s + 60
    task = progress.add_task(name, total=c.warmup_s + measured_s)
    cpus = generator_cpus(harness.processes)
    meters = Meters(cpus, run_dir / "stalls" / name, METER_RT_PRIORITY, cap + 30)
    (run_dir / "csv").mkdir(parents=True, exist_ok=True)
    meters.start()
    steal0, steal_t0 = steal_ticks(cpus), time.perf_counter()
    try:
        with (run_dir / "logs" / f"{name}.log").open("w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            try:
                # Long before Locust forks any worker, which inherit both.
                pinned, priority = pin(proc.pid, cpus), prioritise(proc.pid, priority_for(t, harness.priority))
                mon, t0 = GeneratorMonitor(proc.pid), time.perf_counter()
                next_sample = t0
                while proc.poll() is None and time.perf_counter() - t0 < cap:
                    if time.perf_counter() >= next_sample:  # once a second; the end is noticed within 0.2 s
                        next_sample += 1.0
                        mon.sample()
                        if scraper is not None:
                            scraper.sample()
                        if meter is not None:
                            meter.sample()
                        progress.update(task, completed=min(time.perf_counter() - t0, c.warmup_s + measured_s))
                    time.sleep(0.2)
            finally:  # past the cap, or interrupted: never leave a generator behind
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
            if scraper is not None:
                scraper.sample()
            if meter is not None:
                meter.sample()
    finally:
        stalls = meters.stop()
    steal_s = (steal_ticks(cpus) - steal0) / ticks_per_s()
    steal_span = (time.perf_counter() - steal_t0) * len(cpus)
    progress.update(task, completed=c.warmup_s + measured_s)
    if not out.exists():
        console.print(f"[red]{name}: no result (see {run_dir / 'logs' / (name + '.log')})")
        return None
    doc = json.loads(out.read_text(encoding="utf-8"))
    if doc["snapshot"] is None:
        return None
    rec = Recorder.merge([doc["snapshot"]])
    measured_from = time.perf_counter() - (time.time() - (rec.epoch + rec.warmup_s))
    health = mon.health(measured_from, rec.totals.counts["late"], rec.totals.counts["sent"])
    health["priority"] = priority
    measured = (measured_from, measured_from + measured_s)
    health["platform"] = platform_health(stalls, cpus, pinned, rec.late_log, measured)
    health["platform"]["steal_pct"] = round(100 * steal_s / steal_span, 2) if steal_span > 0 else 0.0
    hlogs = [str(p.relative_to(run_dir)) for p in write_hlogs(rec, run_dir / "hlog" / name)]
    point = build_point(
        rec,
        target=t.as_dict(),
        load=load,
        measured_s=measured_s,
        generator=health,
        criteria=c,
        slo_ms=slo_ms,
        hlogs=hlogs,
    )
    if (run_dir / "csv" / f"{name}_stats.csv").exists():
        point["locust_csv"] = f"csv/{name}"
    if rec.totals.timings:
        point["server_timing_ms"] = {k: latency_summary(h) for k, h in sorted(rec.totals.timings.items())}
    if scraper is not None:
        point["server"] = scraper.between(measured_from, measured_from + measured_s)
    if meter is not None:
        completed = rec.totals.counts["ok"] + rec.totals.counts["errors"] + rec.totals.counts["wrong"]
        point["resources"] = meter.between(measured_from, measured_from + measured_s, completed)
    if doc["shards_received"] < doc["shards_expected"]:
        point["valid"] = False
        point["reasons"].append(
            f"incomplete: {doc['shards_received']} of {doc['shards_expected']} generator processes reported"
        )
        point["reason_kinds"].append("measurement")
        if point.get("outcome", {}).get("result") == "pass":
            point["outcome"] = {"result": "remeasure", "why": point["reasons"][-1]}
    return point
