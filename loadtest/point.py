"""One point of summary.json: merged recorder + generator health + criteria -> numbers and verdict."""

from __future__ import annotations

from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from loadtest.recorder import Recorder, new_histogram
from loadtest.stats import latency_summary, spectrum, window_rows
from loadtest.validity import Criteria, Evidence, judge


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


def tail_exceedances(rec: Recorder, indices: list[int]) -> list[tuple[int, int]] | None:
    """For the given windows: (requests, requests above the p99 of those windows pooled)."""
    hists = [rec.windows[i].from_schedule for i in indices if i in rec.windows]
    if not hists or len(hists) < len(indices):
        return None
    pooled = new_histogram()
    for h in hists:
        pooled.add(h)
    if pooled.get_total_count() == 0:
        return None
    p99 = pooled.get_value_at_percentile(99.0)
    return [(h.get_total_count(), count_above(h, p99)) for h in hists]


def evidence(
    rec: Recorder,
    measured_s: float,
    generator_cpu_pct: float,
    open_loop: bool = True,
    stable_windows: int = 3,
    late_explained: int = 0,
) -> Evidence:
    """Collect what `judge` needs from a merged recorder; only complete windows count for stability.

    Closed loop has no offered load: its windows compare raw throughput and keep_up is None.
    """
    c = rec.totals.counts
    complete = [r for r in window_rows(rec) if r["start_s"] + rec.window_s <= measured_s + 1e-9]
    return Evidence(
        tail=tail_exceedances(rec, [r["index"] for r in complete][-stable_windows:]),
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
        per_window=min((r["counts"]["ok"] for r in complete), default=0),
        keep_up=_ratio(sum(r["counts"]["ok"] for r in complete), sum(r["counts"].get("due", 0) for r in complete))
        if open_loop
        else None,
        generator_cpu_pct=generator_cpu_pct,
        dropped=c["dropped"],
        late_explained=late_explained,
    )


def build_point(
    rec: Recorder,
    *,
    target: dict[str, str],
    load: dict[str, Any],
    measured_s: float,
    generator: dict[str, Any],
    criteria: Criteria,
    hlogs: list[str] | None = None,
) -> dict[str, Any]:
    """The summary.json entry of one point (see loadtest/report/SCHEMA.md)."""
    ev = evidence(
        rec,
        measured_s,
        float(generator.get("cpu_pct", 0.0)),
        load.get("mode", "open") == "open",
        criteria.stable_windows,
        int(generator.get("platform", {}).get("late_explained", 0)),
    )
    verdict = judge(ev, criteria)
    c = rec.totals.counts
    return {
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
        "hlogs": hlogs or [],
    }
