"""`make bench`: every target of the running stack, a rate search per target, the floor, the report.

The plan says which models, which targets, how each point is judged (criteria) and which rates run: a
fixed list (`--rates`, and the quick preset) or a search for the highest rate whose p99 meets the model's
SLO (loadtest/search.py). Server counters are scraped during every point (loadtest/servermetrics.py).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from loadtest.pointrun import Harness, console, reachable, run_point
from loadtest.resources import ResourceMeter
from loadtest.search import BOUNDS, Bracket, SearchPlan, search
from loadtest.servermetrics import Scraper, metrics_url
from loadtest.stack import StackInfo
from loadtest.targets import Target
from loadtest.validity import Criteria

DEFAULT_SLO_MS = {"digits": 100.0, "resnet18": 1500.0}
"""p99 SLOs for CPU serving: a common latency budget for an online call, with room for the reference VM's
10-20 ms stalls (docs/benchmark-method.md, "Platform stalls"); `--slo digits=25` is a stricter run."""
SEARCH_START = {"digits": 100.0, "resnet18": 8.0}
IDLE_SETTLE_S = 2.0
"""Pause after a target's last point before the idle reading: the last requests drain, the server goes quiet."""
QUICK_RATES = {"direct": [50.0, 100.0], "gateway": [75.0]}
"""`make bench QUICK=1`: 9 s points (validity.QUICK), each with the 300 requests a p99 verdict needs."""


@dataclass
class Plan:
    """What one bench run measures."""

    models: list[str]
    criteria: Criteria
    slo_ms: dict[str, float]
    patterns: list[str] = field(default_factory=lambda: ["all"])
    rates: dict[str, list[float]] | None = None
    """Fixed open-loop rates by path ('direct'/'gateway'); None: search each target."""
    concurrency: list[int] = field(default_factory=list)
    """Closed-loop sweep instead of open loop (comparison with perf_analyzer-style tools)."""
    max_points: int = 9
    schedule: str = "poisson"
    batch: int = 1
    seed: int = 1

    def slo(self, model: str) -> float:
        """p99 SLO of `model` (ms)."""
        return self.slo_ms.get(model, DEFAULT_SLO_MS.get(model, 25.0))


def scraper_for(stack: StackInfo, t: Target) -> Scraper | None:
    """The scraper of the server behind `t`, where its counters describe exactly this target's requests:
    TorchServe only for direct REST (its latency sums ignore gRPC), TF Serving per entrypoint (direct) or
    all entrypoints (through the gateway, whichever protocol it speaks upstream)."""
    if t.framework not in stack.services:
        return None
    if t.framework == "torchserve":
        if (t.protocol, t.path) != ("rest", "direct"):
            return None
        return Scraper(t.framework, t.model, metrics_url(t.framework, stack.url("torchserve", "ts_metrics")))
    entrypoint = t.protocol.upper() if t.path == "direct" else None
    return Scraper(t.framework, t.model, metrics_url(t.framework, stack.url("tfserving", "tf_rest")), entrypoint)


def lowest_rate(plan: Plan) -> float:
    """The search goes no lower than the rate that needs 4x the minimum duration to reach the minimum
    request count (points are lengthened to reach it, see Criteria.measured_s)."""
    c = plan.criteria
    return max(1.0, c.min_requests / (4 * c.min_duration_s))


def _open(plan: Plan, rate: float) -> dict[str, Any]:
    return {"mode": "open", "schedule": plan.schedule, "rate_rps": rate, "batch": plan.batch, "seed": plan.seed}


def measure_target(
    t: Target,
    plan: Plan,
    stack: StackInfo,
    run_dir: Path,
    harness: Harness,
    progress: Progress,
    meter: ResourceMeter | None = None,
) -> list[dict[str, Any]]:
    """Every point of one target: the fixed rates, the closed-loop sweep, or the rate search."""
    slo = plan.slo(t.model)

    def point(load: dict[str, Any], attempt: int = 0) -> dict[str, Any] | None:
        crit = plan.criteria.longer(attempt)
        tag = f"r{attempt}" if attempt else ""
        return run_point(t, load, crit, run_dir, harness, progress, scraper_for(stack, t), tag, slo, meter)

    if plan.concurrency:
        loads = [{"mode": "closed", "concurrency": n, "batch": plan.batch} for n in plan.concurrency]
        return [p for p in map(point, loads) if p is not None]
    if plan.rates is not None:
        return [p for p in (point(_open(plan, r)) for r in plan.rates.get(t.path, [])) if p is not None]
    bracket, points = search(
        lambda rate, attempt: point(_open(plan, rate), attempt),
        SearchPlan(
            start=SEARCH_START.get(t.model, 10.0),
            max_points=plan.max_points,
            min_rate=lowest_rate(plan),
            remeasure=plan.criteria.remeasure,
        ),
    )
    console.print(f"{t.id}: {describe(bracket, slo)} ({len(points)} points)")
    return points


def describe(b: Bracket, slo_ms: float) -> str:
    """One line: the bracket and what bounded it, never a harness limit worded as the server's."""
    low = f"{b.passed:g} req/s" if b.passed is not None else "no rate"
    if b.bounded_at is None:
        return f"p99 ≤ {slo_ms:g} ms at {low}; capacity not reached (the highest rate tried passed)"
    return f"p99 ≤ {slo_ms:g} ms at {low}, not at {b.bounded_at:g} req/s: {BOUNDS[b.bound]} ({b.why})"


def run_all(
    targets: list[Target],
    plan: Plan,
    stack: StackInfo,
    run_dir: Path,
    harness: Harness,
    meter: ResourceMeter | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every reachable target in turn (never two at once: they would share the CPUs). Returns the points
    and, with `meter`, the idle readings of the services taken between targets (after the first one warmed them)."""
    points: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    with Progress(console=console, transient=False) as progress:
        for t in targets:
            if not reachable(t):
                console.print(f"[yellow]{t.id}: nothing listens on {t.host}:{t.port}; skipped")
                continue
            if meter is not None and points:
                time.sleep(IDLE_SETTLE_S)
                idle.append({name: u.rss_bytes for name, u in meter.sample().items()})
            points += measure_target(t, plan, stack, run_dir, harness, progress, meter)
    return points, idle


def floor(models: list[str], artifacts: Path, out: Path, quick: bool) -> list[dict[str, Any]]:
    """In-process floor of both frameworks, in a child process (torch and TF stay out of this one);
    empty where torch or TensorFlow is not installed (the load-generator image)."""
    if not all(importlib.util.find_spec(m) for m in ("torch", "tensorflow")):
        console.print("[yellow]floor skipped: torch or tensorflow is not installed here")
        return []
    iters = ["--iters", "200", "--budget", "8", "--batches", "1"] if quick else ["--batches", "1,8"]
    cmd = [sys.executable, "-m", "loadtest.floor", "--models", ",".join(models), "--artifacts", str(artifacts)]
    with console.status("floor: in-process forward latency of torch and TensorFlow"):
        done = subprocess.run(
            [*cmd, *iters, "--out", str(out)], capture_output=True, text=True, timeout=300, check=False
        )
    if done.returncode != 0 or not out.exists():
        console.print(f"[red]floor failed (exit {done.returncode}): {done.stderr[-800:]}")
        return []
    return list(json.loads(out.read_text(encoding="utf-8")))
