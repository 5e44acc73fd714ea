"""`python -m loadtest.run` (`make bench`): measure every target of the running stack -> results/<run>/.

Reads run/state.json (`make up`, native) or uses compose's service names (`--stack compose`) to find the
targets: {torchserve, tfserving} x {rest, grpc} x direct, and through the gateway when it runs. For each
target a rate search finds the highest rate whose p99 meets the model's SLO (or `--rates` fixes the rates);
each point is one headless Locust run judged by the validity rules. `--quick`: digits only, two rates,
short points (< 3 minutes on 2 cores). Writes summary.json, report.html, report.md, hlog/, csv/ (Locust's own),
points/, logs/, stalls/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from loadtest import coldstart, registered, resources
from loadtest.crosscheck import check_at_capacity
from loadtest.plan import DEFAULT_SLO_MS, QUICK_RATES, Plan, floor, run_all
from loadtest.pointrun import PRIORITIES, Harness, console, locust_command
from loadtest.report import write_report
from loadtest.report.analysis import best_under_slo, decomposition, slo_for
from loadtest.report.schema import SCHEMA_VERSION
from loadtest.runblock import run_block
from loadtest.search import capacities
from loadtest.spec import DEFAULT_TIMEOUT_S
from loadtest.stack import CONTRACT_PORTS, StackInfo, discover
from loadtest.targets import Target, parse_target
from loadtest.validity import DEFAULT, FULL, QUICK


def parse_slo(text: str) -> dict[str, float]:
    """'digits=25,resnet18=1500' -> {'digits': 25.0, 'resnet18': 1500.0}."""
    out = dict(DEFAULT_SLO_MS)
    for part in filter(None, text.split(",")):
        model, _, ms = part.partition("=")
        out[model.strip()] = float(ms)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="python -m loadtest.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stack", choices=["auto", "native", "compose"], default="auto")
    ap.add_argument("--state", type=Path, default=Path("run/state.json"), help="the native stack's state file")
    ap.add_argument("--targets", default="all", help="patterns, e.g. 'torchserve-*-direct' or ids with @port")
    ap.add_argument("--models", default=None, help=f"default {BUILTIN_MODELS} (quick: digits)")
    ap.add_argument("--rates", default="", help="fixed open-loop rates instead of the search, e.g. '25,50'")
    ap.add_argument("--concurrency", default="", help="closed-loop sweep instead, e.g. '1,2,4,8'")
    ap.add_argument("--slo", default="", help="p99 SLO per model in ms (default digits=100,resnet18=1500)")
    ap.add_argument(
        "--max-points",
        type=int,
        default=9,
        help="rates per target in the rate search (from 100 req/s, five doublings reach 3,200; the rest bisect)",
    )
    ap.add_argument(
        "--schedule",
        choices=["poisson", "constant"],
        default=None,
        help="arrivals (default poisson; --quick: constant, whose even spacing is less sensitive to generator jitter)",
    )
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", type=int, default=1, help="Locust processes per point")
    ap.add_argument(
        "--generator-priority",
        choices=PRIORITIES,
        default="auto",
        help="how Locust is scheduled: auto (default: SCHED_FIFO for REST targets, whose pacer sleeps between sends; "
        "nice -5 for gRPC, whose pacer spins), nice, fifo, or normal",
    )
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per-request timeout, seconds")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--out", type=Path, default=None, help="run directory (default results/<timestamp>)")
    ap.add_argument("--floor", type=Path, default=None, help="reuse a floor.json instead of measuring it")
    ap.add_argument("--no-floor", action="store_true", help="skip the in-process floor")
    ap.add_argument(
        "--no-coldstart", action="store_true", help="skip the cold start of each stack (one private restart each)"
    )
    ap.add_argument(
        "--no-crosscheck", action="store_true", help="skip hey at each stack's capacity (needs the Debian package hey)"
    )
    ap.add_argument("--dry-run", action="store_true", help="print the Locust command lines only")
    speed = ap.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="digits, two rates, short points (< 3 min)")
    speed.add_argument("--full", action="store_true", help="longer, stricter criteria for a dedicated host")
    return ap


BUILTIN_MODELS = "digits,resnet18,textclf"
"""`make bench`'s models: the digits CNN, a convnet and a transformer; the report compares the stacks on each."""
PRESETS_BY_FLAG = {"quick": QUICK, "full": FULL, "default": DEFAULT}


def mode_of(args: argparse.Namespace) -> str:
    """The preset the options chose: 'quick', 'full' or 'default'."""
    return "quick" if args.quick else "full" if args.full else "default"


def _contract_stack() -> StackInfo:
    """Every service at its contract port on loopback (dry runs without a running stack)."""
    hosts = dict.fromkeys(("torchserve", "tfserving", "gateway"), "127.0.0.1")
    return StackInfo("contract", hosts, dict(CONTRACT_PORTS), frozenset(hosts), "standin", Path("run"))


def gateway_notes(has_gateway: bool, points: list[dict[str, Any]]) -> list[str]:
    """Why the report has no gateway rows, when it has none: the gateway was down, or --targets left it out."""
    if any(p["target"]["path"] == "gateway" for p in points):
        return []
    if has_gateway:
        return ["No gateway targets were measured: --targets selected direct paths only."]
    return ["The gateway was not running: no gateway targets measured."]


def make_plan(args: argparse.Namespace) -> Plan:
    """Models, criteria and rates from the options."""
    models = (args.models or ("digits" if args.quick else BUILTIN_MODELS)).split(",")
    criteria = PRESETS_BY_FLAG[mode_of(args)]
    rates = None
    if args.rates:
        fixed = [float(r) for r in args.rates.split(",")]
        rates = {"direct": fixed, "gateway": fixed}
    elif args.quick:
        rates = QUICK_RATES
    return Plan(
        models=models,
        criteria=criteria,
        slo_ms={**registered.slos(models, args.artifacts), **parse_slo(args.slo)},  # --slo wins
        patterns=[s for s in args.targets.split(",") if s and "@" not in s],
        rates=rates,
        concurrency=[int(n) for n in args.concurrency.split(",") if n],
        max_points=args.max_points,
        schedule=args.schedule or ("constant" if args.quick else "poisson"),
        batch=args.batch,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    plan = make_plan(args)
    try:
        stack = discover(args.stack, args.state)
    except (FileNotFoundError, RuntimeError) as err:
        if not args.dry_run:
            console.print(f"[red]{err}")
            return 2
        stack = _contract_stack()
    harness = Harness(args.artifacts, stack.run_dir, args.timeout, args.processes, args.generator_priority)
    pinned = [parse_target(s) for s in args.targets.split(",") if "@" in s]
    targets = pinned + (stack.targets(plan.models, plan.patterns) if plan.patterns else [])
    started = datetime.now(UTC)
    run_dir = args.out or Path("results") / started.strftime("%Y%m%d-%H%M%S")
    if args.dry_run:
        for t in targets:
            rates = (plan.rates or {}).get(t.path, [10.0])
            loads = [{"mode": "closed", "concurrency": n, "batch": plan.batch} for n in plan.concurrency] or [
                {"mode": "open", "schedule": plan.schedule, "rate_rps": r, "batch": plan.batch, "seed": plan.seed}
                for r in rates
            ]
            for load in loads:
                spec = harness.spec(t, load, plan.criteria, run_dir / "points" / "x.json")
                print(shlex.join(locust_command(spec, harness.processes)))
        return 0
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    tf = "real TF Serving" if stack.tf_side == "real" else "the TF Serving STAND-IN"
    gw = "with" if stack.has_gateway else "without"
    console.rule(f"twinserve bench: {len(targets)} targets ({stack.source} stack, {tf}, {gw} gateway) -> {run_dir}")
    cold = {}
    if not args.no_coldstart and stack.source == "native":
        present = [s for s in coldstart.STACKS if s in stack.services]
        cold = coldstart.measure(present, plan.models[0], args.artifacts, runs=1)
    floor_entries: list[dict[str, Any]] = []
    if args.floor is not None and args.floor.exists():
        floor_entries = json.loads(args.floor.read_text(encoding="utf-8"))
    elif not args.no_floor:
        floor_entries = floor(plan.models, args.artifacts, run_dir / "floor.json", args.quick)
    meter = resources.meter_for(stack)
    points, idle = run_all(targets, plan, stack, run_dir, harness, meter)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "points": points,
        "run": run_block(
            run_dir.name,
            started,
            mode=mode_of(args),
            command=shlex.join(["python", "-m", "loadtest.run", *(argv if argv is not None else sys.argv[1:])]),
            criteria=plan.criteria,
            slo_ms_by_model={m: plan.slo(m) for m in plan.models},
            stack=stack,
            stand_in=stack.tf_side != "real",
            notes=gateway_notes(stack.has_gateway, points),
        ),
        "floor": floor_entries,
    }
    summary["capacity"] = capacities(points)
    summary["resources"] = resources.summarize(
        points,
        idle,
        plan.models[0],
        stand_in=stack.tf_side != "real",
        cold_start=cold,
        load_s=resources.load_times(stack, plan.models),
        artifacts=resources.artifact_bytes(args.artifacts, plan.models),
        images=resources.images_of(stack),
    )
    if not args.no_crosscheck:
        summary["crosscheck"] = crosscheck(summary, stack, args, seconds=8.0 if args.quick else 15.0)
    summary["decomposition"] = decomposition(summary)
    paths = write_report(summary, run_dir)
    print_summary(summary, paths["html"])
    return 0


def crosscheck(summary: dict[str, Any], stack: StackInfo, args: argparse.Namespace, seconds: float) -> list[dict]:
    """hey at the capacity of each stack's direct REST target (the headline model): independent p99s beside ours.

    gRPC targets have no independent open-loop tool here, so each stack is checked on REST."""
    out: list[dict[str, Any]] = []
    model = args_models(summary)[0]
    for fw in ("torchserve", "tfserving"):
        tid = f"{fw}-rest-direct:{model}"
        bracket = summary["capacity"].get(tid)
        if bracket is None or bracket["passed"] is None:
            continue
        point = next(
            p
            for p in reversed(summary["points"])
            if p["target"]["id"] == tid and p["load"].get("rate_rps") == bracket["passed"]
        )
        t: Target = stack.target(fw, "rest", "direct", model)
        beyond = bracket["bounded_at"] if bracket["bound"] not in ("slo", "server") else None
        slo = summary["run"]["slo_p99_ms_by_model"][model]
        with console.status(f"cross-check: hey against {tid} at {bracket['passed']:g} req/s"):
            try:
                row = check_at_capacity(point, t, args.artifacts, stack.run_dir, seconds, beyond, slo)
            except (FileNotFoundError, OSError, subprocess.SubprocessError) as err:
                console.print(f"[yellow]cross-check of {tid} skipped: {err}")
                continue
        flag = " [red]DISAGREE[/red]" if row["flagged"] else ""
        console.print(
            f"cross-check {tid} at {row['rate_rps']:g} req/s: harness p99 {row['harness']['p99']:.2f} ms, "
            f"hey p99 {row['independent']['p99'] or float('nan'):.2f} ms{flag}"
        )
        if "beyond" in row:
            b = row["beyond"]
            verdict = "sustains it" if b["sustained"] else "does not sustain it either"
            console.print(
                f"  hey at {b['rate_rps']:g} req/s, where the harness stopped ({bracket['bound']}): p99 "
                f"{b['p99'] or float('nan'):.2f} ms, {b['non_200']} non-200: the server {verdict}"
            )
        out.append(row)
    return out


def args_models(summary: dict[str, Any]) -> list[str]:
    """The run's models in the order given (the first is the headline's)."""
    return list(summary["run"]["slo_p99_ms_by_model"]) or ["digits"]


def print_summary(summary: dict[str, Any], html: Path) -> None:
    """One screen: per target, the best VALID rate under the SLO, and where the report is."""
    points, run = summary["points"], summary["run"]
    table = Table(title="max throughput with p99 within SLO (VALID points only)")
    for col in ("target", "points", "VALID", "req/s", "p50 ms", "p99 ms", "SLO ms"):
        table.add_column(col, justify="left" if col == "target" else "right", overflow="fold")
    for tid, best in sorted(best_under_slo(points, run).items()):
        mine = [p for p in points if p["target"]["id"] == tid]
        lat = best["latency_ms"]["from_schedule"] if best else None
        table.add_row(
            tid,
            str(len(mine)),
            str(sum(p["valid"] for p in mine)),
            f"{best['achieved_rps']:.1f}" if best else "–",
            f"{lat['p50']:.2f}" if lat else "–",
            f"{lat['p99']:.2f}" if lat else "–",
            f"{slo_for(run, mine[0]['target']['model']):g}",
        )
    console.print(table)
    valid = sum(p["valid"] for p in points)
    console.print(f"{len(points)} points, {valid} VALID. Report: [bold]{html}[/bold]")


if __name__ == "__main__":
    raise SystemExit(main())
