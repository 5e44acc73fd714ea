"""Sweep runner: `python -m loadtest.run --targets all --models digits --quick` -> results/<run>/report.html.

Each point is one headless Locust run (loadtest/locustfile.py) with its own processes; this parent watches
the generator's CPU, reads the merged snapshot the master wrote, judges validity and renders the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import Progress

from loadtest.report import write_report
from loadtest.report.analysis import decomposition
from loadtest.report.schema import SCHEMA_VERSION
from loadtest.sweep import console, locust_command, reachable, run_point
from loadtest.targets import expand, parse_target
from loadtest.validity import FULL, QUICK


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__)
    ap.add_argument(
        "--targets", default="all", help="comma-separated ids or patterns, e.g. 'torchserve-*-direct'"
    )
    ap.add_argument("--models", default="digits")
    ap.add_argument("--rates", default="25,50,100", help="open-loop offered req/s per point")
    ap.add_argument("--concurrency", default="", help="closed-loop sweep instead, e.g. '1,2,4,8'")
    ap.add_argument("--schedule", choices=["poisson", "constant"], default="poisson")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", type=int, default=1, help="Locust processes per point")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    ap.add_argument("--slo-ms", type=float, default=25.0)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--out", type=Path, default=None, help="run directory (default results/<timestamp>)")
    ap.add_argument(
        "--run-dir", type=Path, default=Path("run"), help="supervisor run dir (TorchServe key file)"
    )
    ap.add_argument(
        "--floor", type=Path, default=Path("results/floor.json"), help="from `python -m loadtest.floor`"
    )
    ap.add_argument(
        "--tfserving-real", action="store_true", help="the TF side is real TF Serving, not the stand-in"
    )
    ap.add_argument("--dry-run", action="store_true", help="print the Locust command lines only")
    speed = ap.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="2-core criteria (default)")
    speed.add_argument("--full", action="store_true", help="longer, stricter criteria for a dedicated host")
    args = ap.parse_args(argv)
    c = FULL if args.full else QUICK
    specs = [s for s in args.targets.split(",") if s]
    targets = [parse_target(s) for s in specs if "@" in s] + expand(
        [s for s in specs if "@" not in s], args.models.split(",")
    )
    if args.concurrency:
        loads = [
            {"mode": "closed", "concurrency": int(n), "batch": args.batch}
            for n in args.concurrency.split(",")
        ]
    else:
        loads = [
            {
                "mode": "open",
                "schedule": args.schedule,
                "rate_rps": float(r),
                "batch": args.batch,
                "seed": args.seed,
            }
            for r in args.rates.split(",")
        ]
    started = datetime.now(UTC)
    run_dir = args.out or Path("results") / started.strftime("%Y%m%d-%H%M%S")
    if args.dry_run:
        for t in targets:
            for load in loads:
                print(shlex.join(locust_command(t, load, c, run_dir / "points" / "x.json", args)))
        return 0
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    points = []
    with Progress(console=console, transient=False) as progress:
        for t in targets:
            if not reachable(t):
                console.print(f"[yellow]{t.id}: nothing listens on {t.host}:{t.port}; skipped")
                continue
            for load in loads:
                point = run_point(t, load, c, run_dir, args, progress)
                if point is not None:
                    points.append(point)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "points": points,
        "run": {
            "id": run_dir.name,
            "started_at": started.isoformat(timespec="seconds"),
            "mode": "full" if args.full else "quick",
            "command": shlex.join(["python", "-m", "loadtest.run", *(argv or sys.argv[1:])]),
            "host": {
                "cpus": os.cpu_count() or 0,
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "criteria": c.as_dict(),
            "slo_p99_ms": args.slo_ms,
            "tfserving_stand_in": not args.tfserving_real,
        },
    }
    if args.floor.exists():
        summary["floor"] = json.loads(args.floor.read_text(encoding="utf-8"))
    summary["decomposition"] = decomposition(summary)
    paths = write_report(summary, run_dir)
    console.print(f"{len(points)} points, {sum(p['valid'] for p in points)} VALID -> {paths['html']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
