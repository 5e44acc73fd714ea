"""Headline numbers, computed from VALID points only: max throughput under the p99 SLO, overhead, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadtest.search import BOUNDS, passes

NAMES = {"torchserve": "TorchServe", "tfserving": "TF Serving", "rest": "REST", "grpc": "gRPC"}


def target_label(t: dict[str, Any], stand_in: bool) -> str:
    """'TorchServe gRPC direct', with '(stand-in)' after TF Serving when the stand-in served."""
    fw = NAMES[t["framework"]] + (" (stand-in)" if stand_in and t["framework"] == "tfserving" else "")
    return f"{fw} {NAMES[t['protocol']]} {t['path']}"


def service_label(name: str, stand_in: bool) -> str:
    """'TorchServe', 'TF Serving (stand-in)', 'gateway'."""
    if name == "gateway":
        return "gateway"
    return NAMES[name] + (" (stand-in)" if stand_in and name == "tfserving" else "")


def cost_text(summary: dict[str, Any]) -> str:
    """'TorchServe uses 964 MiB at rest (peak 1,010 MiB) and 1.80 ms of CPU per request; ...', '' without figures."""
    res = summary.get("resources") or {}
    stand_in = summary["run"]["tfserving_stand_in"]
    parts = []
    for name in ("torchserve", "tfserving"):
        c = res.get(name)
        if not c or c.get("rss_idle_bytes") is None:
            continue
        cpu = c.get("cpu_seconds_per_request")
        per_req = f" and {cpu * 1000:.2f} ms of CPU per request" if cpu else ""
        peak = f" (peak {c['rss_peak_bytes'] / 2**20:,.0f} MiB)" if c.get("rss_peak_bytes") else ""
        idle = c["rss_idle_bytes"] / 2**20
        parts.append(f"{service_label(name, stand_in)} uses {idle:,.0f} MiB at rest{peak}{per_req}")
    return ("Cost: " + "; ".join(parts) + ".") if parts else ""


def p99(point: dict[str, Any]) -> float | None:
    """p99 from the scheduled send: the number the SLO is judged on."""
    return point["latency_ms"]["from_schedule"]["p99"]


def slo_for(run: dict[str, Any], model: str) -> float:
    """The p99 SLO of `model` in ms (per-model value if set, else the run's default)."""
    return float(run.get("slo_p99_ms_by_model", {}).get(model, run["slo_p99_ms"]))


def within_slo(pt: dict[str, Any], slo_ms: float) -> bool:
    """A point that counts toward capacity: its outcome passed (VALID, p99 within the SLO at the run's confidence);
    closed-loop points, which have no SLO verdict, when VALID with p99 within the SLO."""
    if "outcome" in pt:
        return passes(pt)
    lat = p99(pt)
    return bool(pt["valid"]) and lat is not None and lat <= slo_ms


def best_under_slo(
    points: Sequence[dict[str, Any]], slo_ms: float | dict[str, Any]
) -> dict[str, dict[str, Any] | None]:
    """Per target id: the passing point (see `within_slo`) with the highest achieved throughput (`slo_ms`: one
    number for every model, or the summary's `run` for per-model SLOs)."""
    best: dict[str, dict[str, Any] | None] = {}
    for pt in points:
        tid = pt["target"]["id"]
        best.setdefault(tid, None)
        slo = slo_for(slo_ms, pt["target"]["model"]) if isinstance(slo_ms, dict) else slo_ms
        if not within_slo(pt, slo):
            continue
        cur = best[tid]
        if cur is None or pt["achieved_rps"] > cur["achieved_rps"]:
            best[tid] = pt
    return best


def floor_p50(summary: dict[str, Any], framework: str, model: str, batch: int = 1) -> float | None:
    """In-process forward p50 of `framework` for `model` at `batch` (None when not measured)."""
    for f in summary.get("floor", []):
        if (f["framework"], f["model"], f["batch"]) == (framework, model, batch):
            return f["latency_ms"]["p50"]
    return None


def headline(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the headline table: one per target that has a VALID point under the SLO."""
    rows = []
    for _tid, pt in sorted(best_under_slo(summary["points"], summary["run"]).items()):
        if pt is None:
            continue
        t, lat = pt["target"], pt["latency_ms"]["from_schedule"]
        fl = floor_p50(summary, t["framework"], t["model"], pt["load"].get("batch", 1))
        rows.append(
            {
                "target": t,
                "label": target_label(t, summary["run"]["tfserving_stand_in"]),
                "rps": pt["achieved_rps"],
                "offered": pt["load"].get("rate_rps"),
                "p50": lat["p50"],
                "p99": lat["p99"],
                "p99_9": lat["p99_9"],
                "error_rate": pt["error_rate"],
                "overhead": round(lat["p50"] / fl, 1) if fl and lat["p50"] else None,
                "slo": slo_for(summary["run"], t["model"]),
                "bracket": summary.get("capacity", {}).get(t["id"]),
            }
        )
    return sorted(rows, key=lambda r: (r["target"]["model"], -r["rps"]))


def bracket_text(b: dict[str, Any] | None) -> str:
    """'[566, 673) req/s: p99 over the SLO', never wording a harness limit as the server's."""
    if b is None:
        return "–"
    low = "–" if b["passed"] is None else _rate(b["passed"])
    if b["bounded_at"] is None:
        return f"≥ {low} req/s: {BOUNDS['not reached']}"
    return f"[{low}, {_rate(b['bounded_at'])}) req/s: {BOUNDS[b['bound']]}"


def _rate(r: float) -> str:
    """Offered rates as people read them: 2,263 and 12.5, not 2262.742."""
    return f"{r:,.0f}" if r >= 100 else f"{r:.3g}"


SERVER_BOUNDS = ("slo", "server")
"""Bounds that say where the *server* stops; any other bound makes a capacity a lower bound only."""


def verdict(summary: dict[str, Any]) -> str:
    """One paragraph: each framework's best direct-path throughput under the SLO, from passing points only (the
    first model in name order when several were measured), what bounded it, and a winner only where the data
    support one: a capacity bounded by the generator, by noise or by the end of the search is a lower bound."""
    stand_in = summary["run"]["tfserving_stand_in"]
    models = sorted({p["target"]["model"] for p in summary["points"]}) or ["-"]
    slo = slo_for(summary["run"], models[0])
    best = best_direct(summary, models[0])
    where = f"model {models[0]}, direct, VALID points only"
    if not best:
        invalid = sum(not p["valid"] for p in summary["points"])
        return (
            f"No point within the {slo:g} ms p99 SLO yet ({invalid} of {len(summary['points'])} "
            f"points INVALID, reasons below; {where})."
        )
    parts = []
    for fw in ("torchserve", "tfserving"):
        top = best.get(fw)
        name = NAMES[fw] + (" (stand-in)" if stand_in and fw == "tfserving" else "")
        if top is None:
            parts.append(f"{name} had no point within the SLO{_closest_hint(summary, fw, models[0])}")
            continue
        b = top["bracket"]
        bound = "" if b is None else f"; {bracket_text(b)}"
        parts.append(
            f"{name} {NAMES[top['target']['protocol']]} sustained {top['rps']:,.0f} req/s "
            f"(p99 {top['p99']:.1f} ms{bound})"
        )
    text = f"{parts[0]} vs {parts[1]} under the {slo:g} ms p99 SLO ({where})."
    return " ".join(x for x in (text, _conclusion(best, stand_in), cost_text(summary)) if x)


def best_direct(summary: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    """Per framework, its headline row with the highest throughput on a direct path for `model` (either
    protocol): what each server sustained without the gateway in front."""
    best: dict[str, dict[str, Any]] = {}
    for r in headline(summary):
        fw = r["target"]["framework"]
        if (r["target"]["path"], r["target"]["model"]) == ("direct", model) and (
            fw not in best or r["rps"] > best[fw]["rps"]
        ):
            best[fw] = r
    return best


def by_model(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The two stacks side by side, one row per model measured: each framework's best direct row under that
    model's SLO (None where no point passed, with the closest VALID point as a hint) and who leads, worded as
    `verdict` words it (no winner where a capacity is only a lower bound)."""
    stand_in = summary["run"]["tfserving_stand_in"]
    rows = []
    for model in sorted({p["target"]["model"] for p in summary["points"]}):
        best = best_direct(summary, model)
        rows.append(
            {
                "model": model,
                "slo": slo_for(summary["run"], model),
                "best": {fw: best.get(fw) for fw in ("torchserve", "tfserving")},
                "hint": {fw: _closest_hint(summary, fw, model).strip(" ()") for fw in ("torchserve", "tfserving")},
                "conclusion": _conclusion(best, stand_in) or "Only one stack has a point within the SLO.",
            }
        )
    return rows


def stack_cell(row: dict[str, Any] | None, hint: str) -> str:
    """'gRPC 1,234 req/s · p50 3.1 / p99 9.8 ms · [1,234, 1,600) req/s: p99 over the SLO', or why there is none."""
    if row is None:
        return "no point within the SLO" + (f" ({hint})" if hint else "")
    return (
        f"{NAMES[row['target']['protocol']]} {row['rps']:,.0f} req/s · p50 {row['p50']:.1f} / p99 {row['p99']:.1f} ms"
        f" · {bracket_text(row['bracket'])}"
    )


def _closest_hint(summary: dict[str, Any], fw: str, model: str) -> str:
    mine = [
        p
        for p in summary["points"]
        if p["valid"]
        and p99(p) is not None
        and (p["target"]["framework"], p["target"]["path"], p["target"]["model"]) == (fw, "direct", model)
    ]
    closest = min(mine, key=lambda p: p99(p) or 0.0, default=None)
    if closest is None:
        return ""
    return f" (its best VALID point: p99 {p99(closest):.1f} ms at {closest['achieved_rps']:,.0f} req/s)"


def _conclusion(best: dict[str, dict[str, Any]], stand_in: bool) -> str:
    """Who leads, or why nobody can be named."""
    if len(best) < 2:
        return ""
    bounds = {fw: (r["bracket"] or {}).get("bound", "not reached") for fw, r in best.items()}
    lower_bound = {fw: bound not in SERVER_BOUNDS for fw, bound in bounds.items()}
    if all(bound == "not reached" for bound in bounds.values()):
        return "Both sustained the highest rate tried; capacity not reached, so no winner can be named."
    hi, lo = sorted(best, key=lambda fw: best[fw]["rps"], reverse=True)
    name = {fw: NAMES[fw] + (" (stand-in)" if stand_in and fw == "tfserving" else "") for fw in best}
    if lower_bound[lo]:
        return f"No winner can be named: {name[lo]}'s figure is a lower bound ({BOUNDS[bounds[lo]]})."
    hi_passed, lo_failed = (best[hi]["bracket"] or {}).get("passed"), (best[lo]["bracket"] or {}).get("bounded_at")
    if hi_passed is not None and lo_failed is not None and hi_passed < lo_failed:
        return (
            f"No winner can be named: the capacity brackets overlap ({name[hi]} {bracket_text(best[hi]['bracket'])}; "
            f"{name[lo]} {bracket_text(best[lo]['bracket'])}); a finer search (--max-points) would separate them."
        )
    ratio = best[hi]["rps"] / best[lo]["rps"] if best[lo]["rps"] else float("inf")
    more = " at least" if lower_bound[hi] else ""
    return f"{name[hi]} sustained{more} {ratio:.2f}× the rate of {name[lo]}."


NOISY_STALL_FRACTION = 0.01
"""Above this median share of stalled time the report warns that the machine itself is noisy."""


def platform_noise(summary: dict[str, Any]) -> dict[str, Any] | None:
    """How much the machine stalled the generator across the points (loadtest/stalls.py), or None when no
    point measured it: median and highest stalled share, median steal, late sends the stalls explained."""
    plats = [p["generator"].get("platform") for p in summary["points"]]
    plats = [x for x in plats if x]
    if not plats:
        return None
    stalls = sorted(x["stall_fraction"] for x in plats)
    steal = sorted(x.get("steal_pct", 0.0) for x in plats)
    return {
        "points": len(plats),
        "median_stall_fraction": stalls[len(stalls) // 2],
        "max_stall_fraction": stalls[-1],
        "median_steal_pct": steal[len(steal) // 2],
        "late_explained": sum(x["late_explained"] for x in plats),
        "longest_stall_ms": max(x["longest_stall_ms"] for x in plats),
        "noisy": stalls[len(stalls) // 2] > NOISY_STALL_FRACTION,
    }


def platform_text(noise: dict[str, Any]) -> str:
    """One sentence for the report's caveats."""
    return (
        f"The machine itself stalled the load generator's CPU for {noise['median_stall_fraction']:.1%} of the "
        f"measured time (median over {noise['points']} points; up to {noise['max_stall_fraction']:.1%}, longest "
        f"stall {noise['longest_stall_ms']:.0f} ms; hypervisor steal {noise['median_steal_pct']:.1f} %). Latency "
        "from the scheduled send includes these stalls, as a client's would; the "
        f"{noise['late_explained']:,} late sends they explain are not held against the generator."
    )


def pareto(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """VALID batching points not beaten on both throughput (higher) and p99 (lower), by throughput."""
    valid = [p for p in points if p["valid"]]
    front = [
        p
        for p in valid
        if not any(
            q is not p
            and q["throughput_rps"] >= p["throughput_rps"]
            and q["p99_ms"] <= p["p99_ms"]
            and (q["throughput_rps"], q["p99_ms"]) != (p["throughput_rps"], p["p99_ms"])
            for q in valid
        )
    ]
    return sorted(front, key=lambda p: p["throughput_rps"])


def _mean(pt: dict[str, Any], name: str) -> float | None:
    lat = pt.get("server_timing_ms", {}).get(name)
    return None if lat is None else lat["mean"]


def _floor_mean(summary: dict[str, Any], framework: str, model: str, batch: int = 1) -> float | None:
    for f in summary.get("floor", []):
        if (f["framework"], f["model"], f["batch"]) == (framework, model, batch):
            return f["latency_ms"]["mean"]
    return None


def decomposition(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Split each target's mean latency (from the actual send) at its lowest VALID offered load into
    disjoint parts: floor, server compute beyond it, queue, gateway->server round trip, the gateway's own
    time; the rest (client, network) is left unattributed. Means, because means of parts add up.

    Sources: the floor run (in-process forward), the server's own counters scraped during the point
    (`point.server`), and the gateway's Server-Timing header/trailer (`point.server_timing_ms`).
    """
    lowest: dict[str, dict[str, Any]] = {}
    for pt in summary["points"]:
        tid = pt["target"]["id"]
        if (
            pt["valid"]
            and pt["load"].get("rate_rps") is not None
            and (tid not in lowest or pt["load"]["rate_rps"] < lowest[tid]["load"]["rate_rps"])
        ):
            lowest[tid] = pt
    out = []
    for tid, pt in sorted(lowest.items()):
        t = pt["target"]
        total = pt["latency_ms"]["from_send"]["mean"]
        if total is None:
            continue
        floor = _floor_mean(summary, t["framework"], t["model"], pt["load"].get("batch", 1))
        row: dict[str, Any] = {"target": tid, "rate_rps": pt["load"]["rate_rps"], "total_ms": total}
        server = pt.get("server")
        inside = None
        if server is not None:
            inside = server["server_ms"]
            if server.get("compute_ms") is not None:
                row["queue_ms"] = server["queue_ms"]
                row["compute_ms"] = server["compute_ms"]
                key = "compute_ms"
            else:
                row["server_ms"] = inside
                key = "server_ms"
            if floor is not None:
                row["floor_ms"] = min(floor, row[key])
                row[key] = round(row[key] - row["floor_ms"], 4)
        elif floor is not None:
            row["floor_ms"] = floor
        gw, up = _mean(pt, "gateway"), _mean(pt, "upstream")
        if t["path"] == "gateway" and gw is not None and up is not None:
            row["gateway_ms"] = round(max(0.0, gw - up), 4)
            if inside is not None:
                row["upstream_ms"] = round(max(0.0, up - inside), 4)
        out.append(row)
    return out
