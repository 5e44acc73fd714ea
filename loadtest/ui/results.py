"""A UI run as a twinserve result: the same points, verdicts, capacity brackets and report as `make bench`.

Each ticked target's snapshot becomes one summary.json point (loadtest.point.build_point: validity.judge, the
SLO verdict and the outcome); the summary is validated and rendered by loadtest.report.write_report.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.point import build_point
from loadtest.pointrun import point_name
from loadtest.recorder import Recorder
from loadtest.report import write_report
from loadtest.report.analysis import decomposition
from loadtest.report.schema import SCHEMA_VERSION
from loadtest.runblock import run_block
from loadtest.search import capacities
from loadtest.stats import latency_summary, write_hlogs
from loadtest.ui.catalog import Catalog
from loadtest.ui.fields import RunConfig, slo_ms

COMMAND = "make locust (Locust web UI: python -m loadtest.webui)"


def _mark_short(point: dict[str, Any], measured_s: float, planned_s: float) -> None:
    """A run stopped before its measured time is not a full measurement, whatever its numbers say."""
    point["valid"] = False
    point["reasons"].append(f"stopped early: {measured_s:.1f} s of {planned_s:g} s measured")
    point["reason_kinds"].append("measurement")
    if point.get("outcome", {}).get("result") == "pass":
        point["outcome"] = {"result": "remeasure", "why": point["reasons"][-1]}


def _point(reports: list[dict[str, Any]], cfg: RunConfig, catalog: Catalog, run_dir: Path) -> dict[str, Any] | None:
    snaps = [r["snapshot"] for r in reports if r.get("snapshot")]
    if not snaps:
        return None
    t = next(t for t in catalog.targets if t.id == reports[0]["target"])
    rec = Recorder.merge(snaps)
    measured_s = min(float(r["measured_s"]) for r in reports)
    load = cfg.load(len(snaps))
    name = point_name(t, load)
    generator = max((r["generator"] for r in reports), key=lambda g: float(g.get("cpu_pct", 0.0)))
    point = build_point(
        rec,
        target=t.as_dict(),
        load=load,
        measured_s=measured_s,
        generator=generator,
        criteria=cfg.criteria(),
        slo_ms=slo_ms(t.model) if cfg.mode == "open" else None,
        hlogs=[str(p.relative_to(run_dir)) for p in write_hlogs(rec, run_dir / "hlog" / name)],
    )
    if rec.totals.timings:
        point["server_timing_ms"] = {k: latency_summary(h) for k, h in sorted(rec.totals.timings.items())}
    if not all(r.get("complete") for r in reports):
        _mark_short(point, measured_s, cfg.duration_s)
    return point


def write_run(
    reports: dict[str, list[dict[str, Any]]],
    cfg: RunConfig,
    catalog: Catalog,
    results: Path,
    started: datetime,
    workers: int = 0,
    missing: list[str] | None = None,
) -> tuple[Path | None, dict[str, Any] | None]:
    """Write `results/<started>-ui/` (summary.json, report.html, report.md, hlog/); None when nothing was measured."""
    run_dir = results / f"{started.strftime('%Y%m%d-%H%M%S')}-ui"
    points = [p for p in (_point(r, cfg, catalog, run_dir) for _, r in sorted(reports.items())) if p is not None]
    if not points:
        return None, None
    models = sorted({p["target"]["model"] for p in points}, key=lambda m: (m != "digits", m))
    stack = catalog.stack
    notes = [
        "Run from the Locust web UI (`make locust`): every ticked target was driven at once by its own user, so "
        "the targets shared this machine's CPUs; `make bench` measures them one at a time.",
        "No floor, cold start, cost or cross-check in a UI run: `make bench` measures those.",
    ]
    if workers:
        notes.append(f"Distributed: {workers} Locust worker(s) drove the targets.")
    if missing:
        notes.append(f"No result from: {', '.join(missing)} (stopped before its user reported).")
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "points": points,
        "run": run_block(
            run_dir.name,
            started,
            mode="default",
            command=COMMAND,
            criteria=cfg.criteria(),
            slo_ms_by_model={m: slo_ms(m) for m in models},
            stack=stack,
            stand_in=stack.tf_side != "real",
            notes=notes,
        ),
        "floor": [],
    }
    summary["capacity"] = capacities(points)
    summary["decomposition"] = decomposition(summary)
    write_report(summary, run_dir)
    return run_dir, summary
