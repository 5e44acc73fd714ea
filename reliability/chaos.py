"""`make chaos`: faults under load through the real gateway on the real stacks; figures -> docs/reliability.md.

    python -m reliability.chaos                 # all scenarios, long versions (~5 min)
    python -m reliability.chaos --short         # CI-sized versions (~2 min)
    python -m reliability.chaos soak --minutes 10   # `make soak`

Starts its own TorchServe + stand-in on ephemeral loopback ports in a temporary run directory, so it runs
beside `make up`. Exits 1 when a figure breaks its bound (lost requests, failover rate, RSS growth, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability import procs, scenarios
from reliability.report import environment, render

REPO = Path(__file__).resolve().parent.parent


def check(figures: dict[str, Any]) -> list[str]:
    """The bounds every figure must meet; returns what broke."""
    broken = []
    for name in ("kill_torchserve", "kill_tfserving"):
        f = figures.get(name)
        if f is None:
            continue
        if f["lost"]:
            broken.append(f"{name}: {f['lost']} requests lost")
        if f["success_rate_not_in_flight"] < 0.999:
            broken.append(f"{name}: success rate {f['success_rate_not_in_flight']:.4f} < 0.999")
        if f["open_after_kill_s"] is None or f["close_after_restart_s"] is None:
            broken.append(f"{name}: circuit did not open and close again")
        if f["victim_share_after_close"] <= 0:
            broken.append(f"{name}: traffic did not return to {f['victim']}")
    if (s := figures.get("slow_backend")) is not None:
        if set(s["timeout_statuses"]) != {"504"}:
            broken.append(f"slow_backend: timeouts answered {s['timeout_statuses']}")
        if max(s["timeout_latency_s"]) > s["configured_timeout_s"] + 0.5:
            broken.append("slow_backend: a 504 came later than timeout + 0.5 s")
        if s["overload_lost"] or s["max_in_flight_seen"] > s["max_in_flight"]:
            broken.append("slow_backend: lost requests or in-flight above its limit")
    if (r := figures.get("reconnect")) is not None and None in r["recovered_after_s"].values():
        broken.append(f"reconnect: not recovered {r['recovered_after_s']}")
    if (k := figures.get("soak")) is not None:
        if k["explicit_errors"] or k["lost"]:
            broken.append(f"soak: {k['explicit_errors']} errors, {k['lost']} lost")
        if k["rss_growth"] >= 0.10:
            broken.append(f"soak: RSS grew {k['rss_growth']:.1%}")
    return broken


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios, write the figures and docs/reliability.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=["all", "soak"])
    parser.add_argument("--short", action="store_true", help="CI-sized durations")
    parser.add_argument("--minutes", type=float, default=None, help="soak duration (default 2, or 1 with --short)")
    parser.add_argument("--rate", type=float, default=40.0, help="request rate for kill and soak scenarios")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    parser.add_argument("--figures", type=Path, default=None, help="default results/chaos/<what>.json")
    parser.add_argument("--render", type=Path, default=None, help="only re-render --out from a saved figures file")
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        broken = check(saved)
        args.out.write_text(render(saved, saved["command"], environment(), broken))
        print(f"wrote {args.out} from {args.render}")
        return 1 if broken else 0
    command = "python -m reliability.chaos " + " ".join(argv if argv is not None else sys.argv[1:])
    figures: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "command": command.strip()}
    kill_s = 25.0 if args.short else 60.0
    soak_min = args.minutes if args.minutes is not None else (1.0 if args.short else 2.0)
    with tempfile.TemporaryDirectory(prefix="twinserve-chaos-") as tmp:
        began = time.monotonic()
        stack = procs.start_stacks(Path(tmp) / "run")
        try:
            if args.what == "all":
                for victim in ("torchserve", "tfserving"):
                    print(f"kill {victim} under load ...", flush=True)
                    figures[f"kill_{victim}"] = scenarios.as_dict(
                        scenarios.kill_under_load(stack, victim, args.rate, kill_s)
                    )
                print("slow backend ...", flush=True)
                figures["slow_backend"] = scenarios.as_dict(scenarios.slow_backend(stack))
                print("restart and reconnect ...", flush=True)
                figures["reconnect"] = scenarios.as_dict(scenarios.restart_reconnect(stack))
            print(f"soak {soak_min:g} min at {args.rate / 2:g} req/s ...", flush=True)
            figures["soak"] = scenarios.as_dict(scenarios.soak(stack, args.rate / 2, soak_min * 60))
        finally:
            stack.down()
        figures["elapsed_s"] = round(time.monotonic() - began, 1)
    broken = check(figures)
    args.figures = args.figures or REPO / "results" / "chaos" / ("figures.json" if args.what == "all" else "soak.json")
    args.figures.parent.mkdir(parents=True, exist_ok=True)
    args.figures.write_text(json.dumps(figures, indent=2))
    if args.what == "all":
        args.out.write_text(render(figures, figures["command"], environment(), broken))
        print(f"wrote {args.out}")
    print(json.dumps(figures, indent=2))
    for line in broken:
        print("BROKEN:", line, file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
