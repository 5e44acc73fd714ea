"""The gateway benchmark's tables: every point with its verdict, the latency each hop adds (median over the
interleaved rounds), the gateway against Envoy, and the throughput ceiling per core."""

from __future__ import annotations

from statistics import median
from typing import Any

from loadtest.recorder import decode
from loadtest.stats import latency_summary

PCTS = (("p50", "p50"), ("p99", "p99"), ("p99.9", "p99_9"))
GOAL = {"p50": 1.5, "p99": 2.0}
"""Issue 16: the gateway's added p50 at most 1.5x Envoy's, its added p99 at most 2x, on v1 and v2 REST to TF."""
ANCHOR = "envoy->tf-rest"
HELD_TO_GOAL = ("gateway-v1->tf-rest", "gateway-v2->tf-rest")


def _lat(p: dict[str, Any]) -> dict[str, float | None]:
    return p["latency_ms"]["from_schedule"]


def added(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per hop: the latency it adds over its direct baseline in the same round, per percentile, the median over
    rounds; and how many of the points (the hop's and its baseline's) were VALID."""
    by = {(p["round"], p["target"]["name"]): p for p in points}
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        name, base = p["target"]["name"], p["target"].get("baseline")
        if not base or (p["round"], base) not in by:
            continue
        b = by[(p["round"], base)]
        row = out.setdefault(name, {"baseline": base, "rounds": 0, "valid": 0, **{k: [] for k, _ in PCTS}})
        row["rounds"] += 1
        row["valid"] += int(p["valid"] and b["valid"])
        for label, key in PCTS:
            hop, direct = _lat(p)[key], _lat(b)[key]
            if hop is not None and direct is not None:
                row[label].append(hop - direct)
    cpu: dict[str, list[float]] = {}
    for p in points:
        if p.get("proxy_cpu_ms_per_request") is not None:
            cpu.setdefault(p["target"]["name"], []).append(p["proxy_cpu_ms_per_request"])
    for name, row in out.items():
        row["proxy_cpu_ms_per_request"] = round(median(cpu[name]), 4) if name in cpu else None
    for row in out.values():
        for label, _ in PCTS:
            row[f"{label}_rounds"] = [round(v, 3) for v in row[label]]
            row[label] = round(median(row[label]), 3) if row[label] else None
    pooled = pooled_latency(points)
    for name, row in out.items():
        mine, under = pooled.get(name), pooled.get(row["baseline"])
        if mine is not None and under is not None:
            row["pooled"] = {label: round(mine[key] - under[key], 3) for label, key in PCTS}
    return out


def pooled_latency(points: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per target: the percentiles (ms, from the schedule) of one histogram holding every round's answers, for the
    targets whose every point carries its histogram (`histogram`, bench.json from 1 Dec on).

    A round's p99 rests on its ~12th slowest answer (1,200 per point at 100 req/s for 12 s), so the median of three
    rounds' p99 differences swings with a handful of answers; every target is measured in every round for the same
    time, so one histogram per target over all rounds weighs the rounds alike and puts the p99 on 3x the answers.
    """
    merged: dict[str, Any] = {}
    missing: set[str] = set()
    for p in points:
        name, encoded = p["target"]["name"], p.get("histogram")
        if encoded is None:
            missing.add(name)
        elif name in merged:
            merged[name].add(decode(encoded))
        else:
            merged[name] = decode(encoded)
    return {name: latency_summary(h) for name, h in merged.items() if name not in missing}


def against_envoy(hops: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The gateway's added latency as a multiple of Envoy's, per percentile of the goal, and whether it is met."""
    anchor = hops.get(ANCHOR)
    out: dict[str, dict[str, Any]] = {}
    if anchor is None:
        return out
    for name in [h for h in hops if h.split("@")[0] in HELD_TO_GOAL]:
        out[name] = {}
        for label, bound in GOAL.items():
            mine, theirs = hops[name][label], anchor[label]
            ratio = mine / theirs if mine is not None and theirs else None
            out[name][label] = {
                "ratio": None if ratio is None else round(ratio, 2),
                "goal": bound,
                "met": ratio is not None and ratio <= bound,
            }
            if "pooled" in hops[name] and "pooled" in anchor:
                mine, theirs = hops[name]["pooled"][label], anchor["pooled"][label]
                out[name][label]["pooled_ratio"] = round(mine / theirs, 2) if theirs > 0 else None
    return out


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def placement_line(cpus: dict[str, Any]) -> str:
    """One line saying where the processes ran (bench.json's `cpus`, loadtest.gatewaybench.placement)."""
    if cpus.get("layout") != "dedicated":
        return "CPUs: shared, every process on every CPU" + (f" ({cpus['note']})" if cpus.get("note") else "") + "."
    others = ", ".join(f"generator ({cpus['generator']})" if o == "generator" else o for o in cpus["others"])
    line = (
        f"CPUs: dedicated, the proxies ({', '.join(cpus['proxies'])}) on CPU {_ints(cpus['proxy_cpus'])}; "
        f"everything else ({others}) on CPU {_ints(cpus['other_cpus'])}"
    )
    strays = cpus.get("strays", [])
    return line + (f"; {len(strays)} threads found off their CPUs at the end." if strays else "; none strayed.")


def _ints(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def markdown(report: dict[str, Any]) -> str:
    """bench.md: where the processes ran, the added-latency table, then the goal, the ceilings and every point."""
    lines = [
        placement_line(report.get("cpus", {})),
        "",
        "| hop | over | added p50 ms | added p99 ms | added p99.9 ms | proxy CPU ms/req | rounds | both VALID |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["added_ms"].items():
        cells = [name, row["baseline"], row["p50"], row["p99"], row["p99.9"], row.get("proxy_cpu_ms_per_request")]
        cells += [row["rounds"], row["valid"]]
        lines.append("| " + " | ".join(_f(c) for c in cells) + " |")
    if report["against_envoy"]:
        lines += [
            "",
            "| gateway path | added p50 / Envoy's (goal ≤ 1.5) | added p99 / Envoy's (goal ≤ 2) |",
            "|---|---|---|",
        ]
        for name, r in report["against_envoy"].items():
            cells = [f"{_f(r[k]['ratio'])} {'met' if r[k]['met'] else 'missed'}" for k in ("p50", "p99")]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    pooled = {name: row["pooled"] for name, row in report["added_ms"].items() if "pooled" in row}
    if pooled:
        lines += [
            "",
            "Pooled over the rounds (one histogram per target: every round's answers), as a steadier read of the tail:",
            "",
            "| hop | added p50 ms | added p99 ms | added p99.9 ms | p50 / p99 ÷ Envoy's |",
            "|---|---|---|---|---|",
        ]
        for name, row in pooled.items():
            goal = report["against_envoy"].get(name, {})
            ratios = " / ".join(_f(goal[k].get("pooled_ratio")) for k in ("p50", "p99")) if goal else "-"
            lines.append(f"| {name} | {_f(row['p50'])} | {_f(row['p99'])} | {_f(row['p99.9'])} | {ratios} |")
    if report["ceilings"]:
        lines += [
            "",
            "| closed loop to the no-op upstream | concurrency | req/s | proxy cores | req/s per core | CPU ms/req |",
            "|---|---|---|---|---|---|",
        ]
        for c in report["ceilings"]:
            cells = [
                c["target"],
                c["concurrency"],
                c["rps"],
                c["proxy_cores"],
                c["rps_per_core"],
                c["cpu_ms_per_request"],
            ]
            lines.append("| " + " | ".join(_f(v) for v in cells) + " |")
    head = "| round | group | target | rate req/s | ok | wrong | errors | late | p50 ms | p99 ms | p99.9 ms "
    head += "| gateway's own p50 ms (Server-Timing) | verdict |"
    lines += ["", head, "|" + "---|" * 13]
    for p in report["points"]:
        c, lat = p["counts"], _lat(p)
        verdict = "VALID" if p["valid"] else "INVALID: " + "; ".join(p["reasons"])
        if "outcome" in p:
            verdict += f" ({p['outcome']['result']}: {p['outcome']['why']})"
        cells = [p["round"], p["target"]["group"], p["target"]["name"], p["load"]["rate_rps"], c["ok"], c["wrong"]]
        own = p.get("server_timing_ms", {}).get("gateway", {}).get("p50")
        cells += [c["errors"], c["late"], lat["p50"], lat["p99"], lat["p99_9"], own, verdict]
        lines.append("| " + " | ".join(_f(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"
