"""Several gateway-benchmark runs read as one: every round's added latency pooled, the medians, the ratios to
Envoy's, and each variant against the gateway round by round.

On a shared VM two runs a few minutes apart can differ more than a lever does (Envoy's own added p50 moved 0.42 →
0.66 ms between consecutive runs), so a goal judged on one run is partly judged on the machine's minute. This
reads the bench.json of each run and reports the rounds of all of them together beside each run's own figures:

    python -m loadtest.gatewaybench.pool results/gb1/bench.json results/gb2/bench.json results/gb3/bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median
from typing import Any

from loadtest.gatewaybench.report import ANCHOR, GOAL, PCTS, against_envoy


def pooled(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per hop: its added latency per percentile over the rounds of every run (median), the rounds counted, and
    how many of them had both points VALID; in the shape report.added gives, so report.against_envoy reads it."""
    out: dict[str, dict[str, Any]] = {}
    for report in reports:
        for name, row in report["added_ms"].items():
            hop = out.setdefault(name, {"baseline": row["baseline"], "runs": 0, "rounds": 0, "valid": 0})
            hop["runs"] += 1
            hop["rounds"] += row["rounds"]
            hop["valid"] += row["valid"]
            for label, _ in PCTS:
                hop.setdefault(f"{label}_rounds", []).extend(row[f"{label}_rounds"])
    for hop in out.values():
        for label, _ in PCTS:
            values = hop[f"{label}_rounds"]
            hop[label] = round(median(values), 3) if values else None
    return out


def against_variants(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each variant hop (`name@variant`) against its gateway hop `name` in the same rounds: the per-round
    differences of the added p50 (variant minus gateway), their median, and in how many rounds the variant was
    lower."""
    out: dict[str, dict[str, Any]] = {}
    for report in reports:
        hops = report["added_ms"]
        for name, row in hops.items():
            base = name.split("@")[0]
            if "@" not in name or base not in hops:
                continue
            diffs = [v - g for v, g in zip(row["p50_rounds"], hops[base]["p50_rounds"], strict=False)]
            out.setdefault(name, {"against": base, "p50_diff_rounds": []})["p50_diff_rounds"].extend(diffs)
    for row in out.values():
        diffs = row["p50_diff_rounds"]
        row["p50_diff_rounds"] = [round(d, 3) for d in diffs]
        row["p50_diff"] = round(median(diffs), 3) if diffs else None
        row["variant_lower"] = sum(d < 0 for d in diffs)
    return out


def markdown(reports: list[dict[str, Any]], names: list[str]) -> str:
    """The pooled table, the goal over the pooled rounds, each run's own ratios, and the variants."""
    hops = pooled(reports)
    lines = [
        f"{len(reports)} runs, pooled: the median of every round's added latency",
        "",
        "| hop | over | added p50 ms | added p99 ms | added p99.9 ms | runs | rounds | both VALID |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in hops.items():
        cells = [name, row["baseline"], row["p50"], row["p99"], row["p99.9"], row["runs"], row["rounds"], row["valid"]]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    if ANCHOR in hops:
        goal = against_envoy(hops)
        head = " | ".join(f"run {i + 1} ({Path(n).parent.name})" for i, n in enumerate(names))
        bound = f"goal ≤ {GOAL['p50']} / ≤ {GOAL['p99']}"
        lines += ["", f"| gateway path | pooled p50 / p99 ÷ Envoy's ({bound}) | {head} |"]
        lines.append("|---|---|" + "---|" * len(reports))
        for name, ratios in goal.items():
            each = [r["against_envoy"].get(name) for r in reports]
            runs = [f"{e['p50']['ratio']} / {e['p99']['ratio']}" if e else "-" for e in each]
            mine = f"{ratios['p50']['ratio']} / {ratios['p99']['ratio']}"
            lines.append(f"| {name} | {mine} | " + " | ".join(runs) + " |")
        met = {n: sum(bool(r["against_envoy"].get(n, {}).get("p50", {}).get("met")) for r in reports) for n in goal}
        lines += ["", "p50 goal met run by run: " + ", ".join(f"{n} {k} of {len(reports)}" for n, k in met.items())]
    variants = against_variants(reports)
    if variants:
        lines += ["", "| variant | against | added p50 difference, median (variant − gateway) | variant lower in |"]
        lines.append("|---|---|---|---|")
        for name, row in variants.items():
            rounds = len(row["p50_diff_rounds"])
            lines.append(f"| {name} | {row['against']} | {row['p50_diff']} | {row['variant_lower']} of {rounds} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.gatewaybench.pool", description=__doc__.split("\n")[0])
    parser.add_argument("bench_json", nargs="+", type=Path, help="bench.json of each run")
    args = parser.parse_args(argv)
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in args.bench_json]
    print(markdown(reports, [str(p) for p in args.bench_json]), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
