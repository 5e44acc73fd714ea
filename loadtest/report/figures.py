"""The report's figures as inline SVG: latency vs throughput, spectrum, SLO bars, decomposition, Pareto."""

from __future__ import annotations

from typing import Any

from loadtest.report import analysis as an
from loadtest.report.svg import Mark, Series, bars, chart

COLORS = {
    ("torchserve", "grpc"): "#c2410c",
    ("torchserve", "rest"): "#f59e0b",
    ("tfserving", "grpc"): "#1d4ed8",
    ("tfserving", "rest"): "#38bdf8",
}
PARTS = (
    ("floor (forward)", "floor_ms", "#6b7280"),
    ("server compute", "compute_ms", "#10b981"),
    ("server (queue+compute)", "server_ms", "#84cc16"),
    ("server queue", "queue_ms", "#f59e0b"),
    ("gateway→server", "upstream_ms", "#8b5cf6"),
    ("gateway", "gateway_ms", "#ef4444"),
)
SPECTRUM_TICKS = [(2.0, "50%"), (10.0, "90%"), (100.0, "99%"), (1e3, "99.9%"), (1e4, "99.99%")]


def _series_for(points: list[dict[str, Any]], stand_in: bool) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for pt in points:
        t = pt["target"]
        if t["id"] not in out:
            out[t["id"]] = Series(
                an.target_label(t, stand_in),
                COLORS[(t["framework"], t["protocol"])],
                dashed=t["path"] == "gateway",
            )
    return out


def latency_vs_throughput(summary: dict[str, Any], model: str) -> str:
    """p99 (from schedule) vs achieved throughput per target, log y, SLO line; INVALID points crossed."""
    pts = [p for p in summary["points"] if p["target"]["model"] == model and an.p99(p) is not None]
    series = _series_for(pts, summary["run"]["tfserving_stand_in"])
    for p in pts:
        tip = f"offered {p['load'].get('rate_rps')} req/s, achieved {p['achieved_rps']:g}, p99 {an.p99(p)} ms"
        tip += "" if p["valid"] else " INVALID: " + "; ".join(p["reasons"])
        series[p["target"]["id"]].marks.append(Mark(p["achieved_rps"], an.p99(p) or 0.0, p["valid"], tip))
    slo = an.slo_for(summary["run"], model)
    return chart(
        list(series.values()),
        x_label="achieved throughput (req/s)",
        y_label="p99 from schedule (ms)",
        y_log=True,
        hlines=[(slo, f"SLO {slo:g} ms")],
    )


def spectrum(summary: dict[str, Any], model: str) -> str:
    """Percentile spectrum of each target at its best VALID load under the SLO (log-log)."""
    best = an.best_under_slo([p for p in summary["points"] if p["target"]["model"] == model], summary["run"])
    chosen = [p for p in best.values() if p is not None]
    if not chosen:
        return "<p class='muted'>No VALID point under the SLO: no spectrum (logs of every point: hlog/).</p>"
    series = _series_for(chosen, summary["run"]["tfserving_stand_in"])
    for p in chosen:
        s = series[p["target"]["id"]]
        s.name += f" @ {p['achieved_rps']:,.0f}/s"
        s.markers = False
        s.marks = [
            Mark(1.0 / max(1e-5, 1.0 - pct / 100.0), ms, True, f"p{pct:g}: {ms} ms") for pct, ms in p["spectrum_ms"]
        ]
    return chart(
        list(series.values()),
        x_label="percentile (log scale of 1/(1-p))",
        y_label="latency (ms)",
        x_log=True,
        y_log=True,
        x_range=(1.0, 2e4),
        x_ticks=SPECTRUM_TICKS,
    )


def slo_bars(summary: dict[str, Any]) -> str:
    """Max throughput under the SLO per target, VALID points only."""
    stand_in = summary["run"]["tfserving_stand_in"]
    rows = []
    for tid, pt in sorted(an.best_under_slo(summary["points"], summary["run"]).items()):
        t = next(p["target"] for p in summary["points"] if p["target"]["id"] == tid)
        color = COLORS[(t["framework"], t["protocol"])]
        label = f"{an.target_label(t, stand_in)} · {t['model']}"
        if pt is None:
            rows.append((label, [("none", 0.0, color)], "no VALID point under SLO"))
        else:
            rows.append(
                (
                    label,
                    [("req/s", pt["achieved_rps"], color)],
                    f"{pt['achieved_rps']:,.0f}/s · p99 {an.p99(pt) or 0:.1f} ms",
                )
            )
    return bars(rows, unit="req/s")


def decomposition(summary: dict[str, Any]) -> str:
    """Stacked mean parts per target: floor, server compute/queue, gateway->server, gateway, unattributed."""
    rows = []
    stand_in = summary["run"]["tfserving_stand_in"]
    for d in summary.get("decomposition", []):
        parts = [(name, d[key], color) for name, key, color in PARTS if d.get(key) is not None]
        rest = d["total_ms"] - sum(v for _, v, _ in parts)
        if rest > 0:
            parts.append(("client + network (unattributed)", rest, "#d1d5db"))
        name, _, model = d["target"].partition(":")
        fw, proto, path = name.split("-")
        label = an.target_label({"framework": fw, "protocol": proto, "path": path}, stand_in) + f" · {model}"
        rows.append((label, parts, f"{d['total_ms']:.2f} ms"))
    legend = (
        " ".join(f"<span style='color:{c}'>■</span> {n}" for n, _, c in PARTS)
        + " <span style='color:#d1d5db'>■</span> client + network (unattributed)"
    )
    return bars(rows, unit="ms") + f"<div class='muted'>{legend}</div>" if rows else "<p class='muted'>not measured</p>"


def batching(summary: dict[str, Any]) -> str:
    """Batching configurations as throughput vs p99, with each framework's Pareto front."""
    series = []
    for fw in ("torchserve", "tfserving"):
        pts = [b for b in summary.get("batching", []) if b["framework"] == fw]
        if not pts:
            continue
        name = an.NAMES[fw] + (" (stand-in)" if fw == "tfserving" and summary["run"]["tfserving_stand_in"] else "")
        color = COLORS[(fw, "grpc")]
        tip = "batch ≤ {max_batch_size}, timeout {batch_timeout_us} µs: {throughput_rps}/s, p99 {p99_ms} ms"
        series.append(
            Series(
                name + " configs",
                color,
                [
                    Mark(
                        b["throughput_rps"],
                        b["p99_ms"],
                        b["valid"],
                        tip.format(**b) + ("" if b["valid"] else " INVALID: " + "; ".join(b["reasons"])),
                    )
                    for b in pts
                ],
                line=False,
            )
        )
        series.append(
            Series(
                name + " Pareto front",
                color,
                [Mark(b["throughput_rps"], b["p99_ms"], True, tip.format(**b)) for b in an.pareto(pts)],
                dashed=True,
            )
        )
    if not series:
        return "<p class='muted'>not measured</p>"
    return chart(series, x_label="throughput (req/s)", y_label="p99 (ms)")


COST_COLORS = {"torchserve": "#f59e0b", "tfserving": "#38bdf8", "gateway": "#8b5cf6"}
COSTS = (
    ("memory idle / peak", "MiB"),
    ("CPU per request", "ms"),
    ("requests per second per core", "req/s"),
    ("cold start", "s"),
    ("artifact size (headline model)", "MB"),
)


def cost_bars(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """One small bar chart per cost measure: (title, svg), services side by side."""
    res = summary.get("resources") or {}
    model = next(iter(summary["run"].get("slo_p99_ms_by_model", {})), None)
    stand_in = summary["run"]["tfserving_stand_in"]
    out = []
    for title, unit in COSTS:
        rows = []
        for name in ("torchserve", "tfserving", "gateway"):
            c = res.get(name)
            if not c:
                continue
            label = an.service_label(name, stand_in)
            color = COST_COLORS[name]
            if title.startswith("memory") and c["rss_peak_bytes"]:
                idle, peak = (c["rss_idle_bytes"] or 0) / 2**20, c["rss_peak_bytes"] / 2**20
                parts = [("idle", idle, color), ("peak above idle", max(0.0, peak - idle), "#d1d5db")]
                rows.append((label, parts, f"{idle:,.0f} / {peak:,.0f} MiB"))
            elif title.startswith("CPU") and c["cpu_seconds_per_request"]:
                ms = c["cpu_seconds_per_request"] * 1000
                rows.append((label, [("CPU", ms, color)], f"{ms:.2f} ms"))
            elif title.startswith("requests") and c["requests_per_core_s"]:
                per_core = c["requests_per_core_s"]
                rows.append((label, [("per core", per_core, color)], f"{per_core:,.0f}/s"))
            elif title == "cold start" and c.get("cold_start_s"):
                rows.append((label, [("cold start", c["cold_start_s"], color)], f"{c['cold_start_s']:.1f} s"))
            elif title.startswith("artifact") and model in c.get("artifact_bytes", {}):
                mb = c["artifact_bytes"][model] / 1e6
                rows.append((f"{label} · {model}", [("bytes", mb, color)], f"{mb:,.2f} MB"))
        if rows:
            out.append((title, bars(rows, unit=unit, width=560, label_w=200)))
    return out
