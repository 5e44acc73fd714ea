"""One point of summary.json: merged recorder + generator health + criteria -> numbers and verdict."""

from __future__ import annotations

from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from loadtest.recorder import Recorder
from loadtest.stats import latency_summary, spectrum, window_rows
from loadtest.validity import Criteria, Evidence, judge, outcome, slo_verdict


def _relative(row: dict[str, Any]) -> float:
    """Throughput relative to the load offered in that window (open loop), else raw throughput (closed loop).

    Poisson arrivals alone make raw window throughput vary by 1/sqrt(n) (8 % at 150 per window); the ratio
    of completions to scheduled sends is ~1 whenever the server keeps up, whatever the arrivals did.
    """
    return row["throughput_rps"] / row["offered_rps"] if row["offered_rps"] else row["throughput_rps"]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def count_above(h: HdrHistogram, value: int) -> int:
    """Recorded values not equivalent to and above `value`."""
    counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    limit = h.get_highest_equivalent_value(value)
    return int(sum(int(counts[i]) for i in np.flatnonzero(counts).tolist() if h.get_value_from_index(i) > limit))


def evidence(
    rec: Recorder,
    measured_s: float,
    generator_cpu_pct: float,
    open_loop: bool = True,
    late_explained: int = 0,
    slo_ms: float | None = None,
) -> Evidence:
    """Collect what `judge` needs from a merged recorder; only complete windows count for stability and drift.

    Closed loop has no offered load: its windows compare raw throughput and keep_up is None.
    """
    c = rec.totals.counts
    complete = [r for r in window_rows(rec) if r["start_s"] + rec.window_s <= measured_s + 1e-9]
    return Evidence(
        warmup_excluded=c["warmup"],
        duration_s=measured_s,
        completed=c["ok"] + c["errors"] + c["wrong"],
        ok=c["ok"],
        errors=c["errors"],
        wrong=c["wrong"],
        checked=c["checked"],
        late=c["late"],
        sent=c["sent"],
        windows=[(_relative(r) if open_loop else r["throughput_rps"], r["p99_ms"]) for r in complete],
        medians=[r["p50_ms"] for r in complete],
        keep_up=_ratio(sum(r["counts"]["ok"] for r in complete), sum(r["counts"].get("due", 0) for r in complete))
        if open_loop
        else None,
        generator_cpu_pct=generator_cpu_pct,
        dropped=c["dropped"],
        late_explained=late_explained,
        slo_ms=slo_ms,
    )


def slo_section(rec: Recorder, slo_ms: float, c: Criteria) -> dict[str, Any]:
    """How many measured requests were slower than the SLO, from the scheduled and from the actual send, and
    what that shows about p99 (validity.slo_verdict). Failed requests count as slower: they met no SLO."""
    counts = rec.totals.counts
    n = counts["ok"] + counts["errors"]
    limit_us = round(slo_ms * 1000)
    over = count_above(rec.totals.from_schedule, limit_us) + counts["errors"]
    over_send = count_above(rec.totals.from_send, limit_us) + counts["errors"]
    return {
        "slo_ms": slo_ms,
        "quantile": c.slo_quantile,
        "confidence": c.slo_confidence,
        "requests": n,
        "over": over,
        "over_from_send": over_send,
        "verdict": slo_verdict(n, over, c),
        "verdict_from_send": slo_verdict(n, over_send, c),
    }


def build_point(
    rec: Recorder,
    *,
    target: dict[str, str],
    load: dict[str, Any],
    measured_s: float,
    generator: dict[str, Any],
    criteria: Criteria,
    slo_ms: float | None = None,
    hlogs: list[str] | None = None,
) -> dict[str, Any]:
    """The summary.json entry of one point (see loadtest/report/SCHEMA.md); with `slo_ms`, also the SLO verdict
    and the point's outcome for the rate search (validity.outcome)."""
    ev = evidence(
        rec,
        measured_s,
        float(generator.get("cpu_pct", 0.0)),
        load.get("mode", "open") == "open",
        int(generator.get("platform", {}).get("late_explained", 0)),
        slo_ms,
    )
    verdict = judge(ev, criteria)
    c = rec.totals.counts
    point: dict[str, Any] = {
        "target": target,
        "load": load,
        "measured_s": round(measured_s, 3),
        "achieved_rps": round(c["ok"] / measured_s, 3) if measured_s > 0 else 0.0,
        "counts": dict(c),
        "error_rate": round(verdict.error_rate, 6),
        "late_fraction": round(verdict.late_fraction, 6),
        "latency_ms": {
            "from_schedule": latency_summary(rec.totals.from_schedule),
            "from_send": latency_summary(rec.totals.from_send),
        },
        "spectrum_ms": spectrum(rec.totals.from_schedule),
        "windows": window_rows(rec),
        "generator": generator,
        "valid": verdict.valid,
        "reasons": verdict.reasons,
        "reason_kinds": verdict.kinds,
        "hlogs": hlogs or [],
    }
    if slo_ms is not None:
        slo = slo_section(rec, slo_ms, criteria)
        point["slo"] = slo
        result, why = outcome(verdict, slo["verdict"], slo["verdict_from_send"], slo["requests"])
        point["outcome"] = {"result": result, "why": why}
    return point
