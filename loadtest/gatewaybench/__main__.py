"""`make bench-gateway`: the latency the gateway adds to a request against what Envoy adds, in one run, against
the same upstream, with the same open-loop load (Poisson, the pacer of `make bench`), every point judged by the
validity rules of `make bench` (loadtest.validity); and each proxy's throughput per core against a no-op upstream.

    make up                                            # TorchServe and the TF side natively (run/)
    python -m loadtest.gatewaybench --run-dir run --out results/gateway-bench            # anchor + ceiling
    python -m loadtest.gatewaybench --run-dir run --out /tmp/gb --criteria quick --rounds 1   # smoke
    python -m loadtest.gatewaybench --groups noop,clients --out /tmp/gb --rate 50 --criteria quick
    python -m loadtest.gatewaybench --run-dir run --out /tmp/gb --variant orjson=/tmp/exp,PYTHONPATH=/tmp/site

A round measures every target in `--slices` slices (default 6) rather than in one stretch: the round is that
many cycles, each giving every target of a group one slice of its point (the point's measured time / slices),
in an order shuffled per cycle by an RNG seeded from the round, each slice after `--slice-warmup` unrecorded
seconds at the same rate. Why: on a shared VM the machine's speed drifts within minutes, and a hop subtracted from
a direct point measured a minute apart carried that drift into its added latency (negative or doubled). Sliced,
both are measured interleaved over the whole round. A target's slices feed one point (one histogram, the slices
laid end to end on one timeline, so loadtest.validity judges it as one contiguous point: measure.Recording);
`--slices 1` is the earlier contiguous point per target. bench.json records the slicing (`slicing`, and
`slices` in each point with the seeds of its Poisson schedules).

A `--variant` is another gateway (another tree's `gateway` package, extra environment) timed on the anchor's
gateway paths in the same interleaved rounds: how a lever is measured against the gateway as it is.

The benchmark starts its own gateway (one worker; TF side over REST, TorchServe over gRPC) and its own Envoy
(`--envoy-concurrency` worker threads, default 1) on free loopback ports, so it runs beside `make up`'s gateway.
Where they run: `--cpus dedicated` (the default) gives the proxies the first CPU and everything else the others,
`--cpus shared` leaves every process on every CPU (loadtest/gatewaybench/placement.py says why).
Writes <out>/bench.json and <out>/bench.md. Run it on a quiet machine: numbers from a busy one are not results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from loadtest.gatewaybench import measure, placement, report
from loadtest.gatewaybench.plan import GROUPS, Plan
from loadtest.validity import PRESETS, Criteria

REPO = Path(__file__).resolve().parents[2]


def criteria(args: argparse.Namespace) -> Criteria:
    """The preset, with `--duration` and `--warmup` overriding its lengths (5 windows per point)."""
    c = PRESETS[args.criteria]
    if args.duration:
        c = replace(c, min_duration_s=args.duration, window_s=args.duration / 5)
    if args.warmup is not None:
        c = replace(c, warmup_s=args.warmup)
    return c


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the plan, measure the rounds and the ceilings, and collect everything for bench.json."""
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    if unknown := set(groups) - set(GROUPS):
        raise SystemExit(f"unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    c = criteria(args)
    async with contextlib.AsyncExitStack() as stack:
        plan = await Plan(args, stack).build(groups)
        for g in plan.groups:  # each path answers right at all before anything is timed
            for t in g.targets:
                r = await t.send()
                if (outcome := r if isinstance(r, str) else r.outcome) not in ("ok", "unchecked"):
                    raise SystemExit(f"{t.name}: answered {outcome} before the run")
        progress = lambda line: print(line, flush=True)  # noqa: E731

        def spy(t: measure.Target, tag: str) -> contextlib.AbstractContextManager[None]:
            return measure.profiled(args.py_spy, plan.pid_of(t.name), f"{t.name}-{tag}")

        points = await measure.rounds(
            plan.groups, c, args.rounds, args.fraction, args.probe_s, progress, spy, args.slices, args.slice_warmup
        )
        ceilings = []
        for _ in range(args.rounds if plan.ceilings else 0):
            for ceil in plan.ceilings:
                ceilings.append(await measure.ceiling(ceil, args.ceiling_s, args.ceiling_concurrency))
                progress(f"  ceiling {ceilings[-1]}")
        versions = plan.versions | {m: version(m) for m in ("uvicorn", "fastapi", "aiohttp", "grpcio")}
        cpus = plan.placement.report()  # before the stack's processes get their CPUs back
    hops = report.added(points)
    return {
        "command": " ".join(["python -m loadtest.gatewaybench", *sys.argv[1:]]),
        "args": vars(args),
        "criteria": c.as_dict(),
        "cpus": cpus,
        "slicing": {"slices": args.slices, "slice_warmup_s": args.slice_warmup if args.slices > 1 else 0.0},
        "versions": versions,
        "added_ms": hops,
        "against_envoy": report.against_envoy(hops),
        "ceilings": ceilings,
        "points": points,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse, run, write <out>/bench.json and <out>/bench.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="directory for bench.json and bench.md")
    parser.add_argument("--groups", default="anchor,ceiling", help=f"from: {', '.join(GROUPS)}")
    parser.add_argument("--run-dir", default="run", help="native stack started by `make up` (anchor, stacks)")
    parser.add_argument("--artifacts", default=str(REPO / "artifacts"), help="for the reference answers")
    parser.add_argument("--criteria", default="default", choices=sorted(PRESETS), help="validity preset")
    parser.add_argument("--duration", type=float, default=0.0, help="measured seconds per point (preset's)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds sent first and left out (preset's)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; tables show their medians")
    parser.add_argument("--slices", type=int, default=6, help="slices per point, interleaved in a round (1: none)")
    parser.add_argument("--slice-warmup", type=float, default=0.5, help="unrecorded seconds sent before each slice")
    parser.add_argument("--anchor-rate", type=float, default=100.0, help="req/s of the anchor group")
    parser.add_argument("--rate", type=float, default=0.0, help="fixed req/s for every group (no capacity probe)")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the probed capacity to send")
    parser.add_argument("--probe-s", type=float, default=10.0, help="closed-loop capacity probe length")
    parser.add_argument("--ceiling-s", type=float, default=10.0, help="closed-loop seconds per ceiling run")
    parser.add_argument("--ceiling-concurrency", type=int, default=16, help="callers in the ceiling runs")
    parser.add_argument("--variant", action="append", default=[], help="NAME=DIR[,KEY=VALUE...]: another gateway")
    parser.add_argument("--py-spy", type=Path, help="profile each proxy's points with py-spy into this directory")
    parser.add_argument(
        "--cpus", default="dedicated", choices=placement.LAYOUTS, help="proxies on their own CPU, or all shared"
    )
    parser.add_argument("--envoy-concurrency", type=int, default=1, help="Envoy's worker threads")
    args = parser.parse_args(argv)
    if args.slices < 1 or args.slice_warmup < 0:
        parser.error("--slices must be at least 1 and --slice-warmup not negative")
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1, default=str))
    (args.out / "bench.md").write_text(report.markdown(result))
    print(report.markdown(result))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
