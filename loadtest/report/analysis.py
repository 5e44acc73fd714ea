"""Headline numbers, computed from VALID points only: max throughput under the p99 SLO, overhead, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NAMES = {"torchserve": "TorchServe", "tfserving": "TF Serving", "rest": "REST", "grpc": "gRPC"}


def target_label(t: dict[str, Any], stand_in: bool) -> str:
    """'TorchServe gRPC direct', with '(stand-in)' after TF Serving when the stand-in served."""
    fw = NAMES[t["framework"]] + (" (stand-in)" if stand_in and t["framework"] == "tfserving" else "")
    return f"{fw} {NAMES[t['protocol']]} {t['path']}"


def p99(point: dict[str, Any]) -> float | None:
    """p99 from the scheduled send: the number the SLO is judged on."""
    return point["latency_ms"]["from_schedule"]["p99"]


def best_under_slo(points: Sequence[dict[str, Any]], slo_ms: float) -> dict[str, dict[str, Any] | None]:
    """Per target id: the VALID point with the highest achieved throughput whose p99 meets the SLO."""
    best: dict[str, dict[str, Any] | None] = {}
    for pt in points:
        tid = pt["target"]["id"]
        best.setdefault(tid, None)
        lat = p99(pt)
        if not pt["valid"] or lat is None or lat > slo_ms:
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
    slo = summary["run"]["slo_p99_ms"]
    rows = []
    for _tid, pt in sorted(best_under_slo(summary["points"], slo).items()):
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
            }
        )
    return sorted(rows, key=lambda r: (r["target"]["model"], -r["rps"]))


def verdict(summary: dict[str, Any]) -> str:
    """One sentence: each framework's best direct-path throughput under the SLO, from VALID points only."""
    slo = summary["run"]["slo_p99_ms"]
    stand_in = summary["run"]["tfserving_stand_in"]
    rows = [r for r in headline(summary) if r["target"]["path"] == "direct"]
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        fw = r["target"]["framework"]
        if fw not in best or r["rps"] > best[fw]["rps"]:
            best[fw] = r
    models = sorted({p["target"]["model"] for p in summary["points"]}) or ["-"]
    where = f"model {', '.join(models)}, direct, VALID points only"
    if not best:
        invalid = sum(not p["valid"] for p in summary["points"])
        return (
            f"No VALID point under the {slo:g} ms p99 SLO yet ({invalid} of {len(summary['points'])} "
            f"points INVALID, reasons below; {where})."
        )
    parts = []
    for fw in ("torchserve", "tfserving"):
        top = best.get(fw)
        name = NAMES[fw] + (" (stand-in)" if stand_in and fw == "tfserving" else "")
        if top is None:
            parts.append(f"{name} had no VALID point under the SLO")
        else:
            parts.append(
                f"{name} {NAMES[top['target']['protocol']]} sustained {top['rps']:,.0f} req/s "
                f"(p99 {top['p99']:.1f} ms)"
            )
    return f"{parts[0]} vs {parts[1]} under the {slo:g} ms p99 SLO ({where})."


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


def decomposition(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Split each target's p50 at its lowest VALID offered load into floor, gateway and the rest.

    gateway = gateway p50 - direct p50 (same framework, protocol, model, load); server-side queue/compute
    need the servers' own metrics and stay None (shown as unattributed) until they are scraped.
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
        t, p50 = pt["target"], pt["latency_ms"]["from_schedule"]["p50"]
        row: dict[str, Any] = {
            "target": tid,
            "total_ms": p50,
            "floor_ms": floor_p50(summary, t["framework"], t["model"], pt["load"]["batch"]),
        }
        direct = lowest.get(tid.replace("-gateway:", "-direct:"))
        if (
            t["path"] == "gateway"
            and direct is not None
            and direct["load"]["rate_rps"] == pt["load"]["rate_rps"]
        ):
            row["gateway_ms"] = max(0.0, round(p50 - direct["latency_ms"]["from_schedule"]["p50"], 4))
        out.append(row)
    return out
