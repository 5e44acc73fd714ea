"""Numbers read off recorded histograms: percentiles, spectrum, per-window rates, HdrHistogram logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from loadtest.recorder import Recorder

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def _ms(us: float) -> float:
    return round(us / 1000.0, 4)


def latency_summary(h: HdrHistogram) -> dict[str, Any]:
    """count, mean, p50/p90/p99/p99.9 and max in milliseconds (None when nothing was recorded)."""
    n = h.get_total_count()
    out: dict[str, Any] = {"count": n}
    for p in PERCENTILES:
        out[f"p{p:g}".replace(".", "_")] = _ms(h.get_value_at_percentile(p)) if n else None
    out["mean"] = _ms(mean(h)) if n else None
    out["max"] = _ms(h.get_max_value()) if n else None
    return out


def mean(h: HdrHistogram) -> float:
    """Mean in recorded units, as HdrHistogram defines it (bucket midpoints), over non-empty buckets only.

    The library's own get_mean_value walks every bucket in Python (~50 ms per call); this is ~1 ms.
    """
    counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    total = 0
    for i in np.flatnonzero(counts).tolist():
        v = h.get_value_from_index(i)
        lo = h.get_lowest_equivalent_value(v)
        total += int(counts[i]) * (lo + ((h.get_highest_equivalent_value(v) - lo + 1) >> 1))
    return total / h.get_total_count() if h.get_total_count() else 0.0


def spectrum(h: HdrHistogram, ticks_per_half_distance: int = 5) -> list[list[float]]:
    """[[percentile, latency_ms], ...] at HdrHistogram's log-spaced percentile ticks (up to 100)."""
    if h.get_total_count() == 0:
        return []
    points = [
        [round(it.percentile_level_iterated_to, 6), _ms(it.value_iterated_to)]
        for it in h.get_percentile_iterator(ticks_per_half_distance)
    ]
    return points


def window_rows(rec: Recorder) -> list[dict[str, Any]]:
    """One row per window of the measured phase: throughput (ok/s), offered (due/s), p50 and p99 from schedule."""
    rows = []
    for idx, w in sorted(rec.windows.items()):
        if idx < 0:
            continue
        h = w.from_schedule
        rows.append(
            {
                "index": idx,
                "start_s": idx * rec.window_s,
                "throughput_rps": round(w.counts["ok"] / rec.window_s, 3),
                "offered_rps": round(w.counts.get("due", 0) / rec.window_s, 3),
                "p50_ms": _ms(h.get_value_at_percentile(50.0)) if h.get_total_count() else None,
                "p99_ms": _ms(h.get_value_at_percentile(99.0)) if h.get_total_count() else None,
                "counts": dict(w.counts),
            }
        )
    return rows


def write_hlogs(rec: Recorder, out_dir: Path) -> list[Path]:
    """Write `<target>.<from_schedule|from_send>.hlog` (standard HdrHistogram interval logs, values in µs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in ("from_schedule", "from_send"):
        path = out_dir / f"{rec.target}.{kind}.hlog"
        with path.open("w", encoding="utf-8") as fh:
            writer = HistogramLogWriter(fh)
            writer.output_comment(f"[twinserve loadtest: target {rec.target}, latency {kind}, unit microseconds]")
            writer.output_log_format_version()
            writer.output_base_time(int((rec.epoch + rec.warmup_s) * 1000))
            writer.output_legend()
            for idx, w in sorted(rec.windows.items()):
                h = getattr(w, kind)
                # Written by hand: the library floors the max column; ours keeps it exact, in milliseconds.
                fh.write(
                    f"{idx * rec.window_s:.3f},{rec.window_s:.3f},{h.get_max_value() / 1000.0:.3f},"
                    f"{h.encode().decode('ascii')}\n"
                )
        paths.append(path)
    return paths
