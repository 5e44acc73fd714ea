"""report.html: one self-contained page (inline CSS and SVG, no scripts, no network) readable at a glance."""

from __future__ import annotations

from html import escape
from typing import Any

from loadtest.report import analysis as an
from loadtest.report import figures as fig

CSS = """body{font:14px/1.45 system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1320px;
color:#111827;padding:0 16px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #e5e7eb;padding-bottom:4px}.verdict{font-size:18px;font-weight:600;background:#f0fdf4;
border-left:5px solid #16a34a;padding:10px 14px;margin:12px 0}
.warn{background:#fffbeb;border-left:5px solid #d97706;padding:8px 14px;margin:8px 0}
.bad{background:#fef2f2;border-left:5px solid #dc2626;padding:8px 14px;margin:8px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(640px,1fr));gap:18px}figure{margin:0}
figcaption{font-size:12px;color:#4b5563;margin-top:2px}table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:right}th{background:#f9fafb}
td:first-child,th:first-child{text-align:left}.inv{color:#b91c1c;font-weight:600}.ok{color:#15803d;font-weight:600}
.muted{color:#6b7280;font-size:12px}
table.points td:last-child,table.points th:last-child{text-align:left;max-width:560px}
table.env td,table.env th{text-align:left;max-width:1100px;word-break:break-word}"""


def _table(rows: list[list[str]], head: list[str], cls: str = "") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _n(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def _server(p: dict[str, Any]) -> str:
    srv = p.get("server")
    if not srv:
        return "–"
    if srv.get("queue_ms") is None:
        return f"{srv['server_ms']:.2f} in server"
    return f"{srv['queue_ms']:.2f} / {srv['compute_ms']:.2f}"


def _late(p: dict[str, Any]) -> str:
    """Late sends: the generator's own share, and the share platform stalls explain when measured."""
    plat = p["generator"].get("platform")
    sent = p["counts"].get("sent", 0)
    if not plat or not plat.get("late_explained") or not sent:
        return f"{p['late_fraction']:.2%}"
    own = p["late_fraction"] - plat["late_explained"] / sent
    return f"{own:.2%} <span class='muted'>(+{plat['late_explained'] / sent:.1%} platform)</span>"


def _environment(run: dict[str, Any]) -> str:
    env = run.get("environment") or {}
    if not env:
        return ""
    rows = []
    for key in ("cpu", "gpu", "memory", "os", "stack", "versions"):
        value = env.get(key)
        if key == "gpu" and not value:
            value = "none detected (no nvidia-smi or no NVIDIA GPU)"
        if value in (None, {}, []):
            continue
        text = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        rows.append([escape(key), escape(text)])
    batching = env.get("batching")
    if batching:
        tf = batching["tfserving"]
        agree = [
            f"{m}: batchSize {k['torchserve']['batchSize']} / max_batch_size {tf['max_batch_size']}, "
            f"maxBatchDelay {k['torchserve']['maxBatchDelay']} ms / batch_timeout_micros {tf['batch_timeout_micros']}, "
            f"workers {k['torchserve']['maxWorkers']} / num_batch_threads {tf['num_batch_threads']}, "
            f"job_queue_size {k['torchserve']['job_queue_size']} / max_enqueued_batches {tf['max_enqueued_batches']}"
            + (f" — DISAGREE: {'; '.join(k['disagreements'])}" if k["disagreements"] else "")
            for m, k in sorted(batching["models"].items())
        ]
        rows.append(["batching knobs", "<br>".join(escape(a) for a in agree)])
        rows.append(["batching differences", "<br>".join(escape(d) for d in batching["differences"])])
    configs = env.get("configs", {})
    if configs:
        rows.append(["configs", escape(", ".join(sorted(configs))) + " (full text in summary.json)"])
    return "<h2>Environment</h2>" + _table(rows, ["what", "value"], "env")


def _validity(p: dict[str, Any]) -> str:
    """VALID/INVALID with every reason, then what the point decided about its rate."""
    text = (
        "<span class='ok'>VALID</span>"
        if p["valid"]
        else "<span class='inv'>INVALID</span> " + escape("; ".join(p["reasons"]))
    )
    out = p.get("outcome")
    if out is not None:
        slo = p.get("slo") or {}
        over = f"{slo['over']} of {slo['requests']} over the SLO; " if slo else ""
        text += f"<br><span class='muted'>{over}rate: {escape(OUTCOMES[out['result']])}</span>"
    return text


OUTCOMES = {
    "pass": "passed",
    "fail": "failed (the server)",
    "generator": "the generator's limit here",
    "remeasure": "inconclusive: measured again, longer",
}


def _brackets(summary: dict[str, Any]) -> str:
    """Every target's capacity bracket, including those with no passing point."""
    cap = summary.get("capacity") or {}
    if not cap:
        return ""
    stand_in = summary["run"]["tfserving_stand_in"]
    by_id = {p["target"]["id"]: p["target"] for p in summary["points"]}
    rows = [
        [
            escape(an.target_label(by_id[tid], stand_in)) + " · " + escape(by_id[tid]["model"]),
            escape(b["why"]),
            escape(an.bracket_text(b)),
        ]
        for tid, b in cap.items()
        if tid in by_id
    ]
    return (
        "<h2>Capacity per target: the bracket and what bounded it</h2>"
        + _table(rows, ["target", "deciding reason", "capacity (offered req/s)"])
        + "<p class='muted'>[a, b): passed at a, not at b. Only a bound by the SLO or the server is the server's "
        "limit; a bound by the generator, by noise, or no bound at all makes a a lower bound.</p>"
    )


def _mib(v: int | None) -> str:
    return "–" if v is None else f"{v / 2**20:,.0f}"


def _cost(summary: dict[str, Any]) -> str:
    """The cost side: a table per service and one small chart per measure."""
    res = summary.get("resources") or {}
    stand_in = summary["run"]["tfserving_stand_in"]
    rows = []
    for name in ("torchserve", "tfserving", "gateway"):
        c = res.get(name)
        if not c:
            continue
        cpu = c["cpu_seconds_per_request"]
        loads = ", ".join(f"{m} {s:.2f} s" for m, s in c.get("model_load_s", {}).items()) or "–"
        sizes = ", ".join(f"{m} {b / 1e6:,.2f} MB" for m, b in c.get("artifact_bytes", {}).items()) or "–"
        cold = c.get("cold_start_s")
        rows.append(
            [
                escape(an.service_label(name, stand_in)),
                _mib(c["rss_idle_bytes"]),
                _mib(c["rss_peak_bytes"]),
                "–" if cpu is None else f"{cpu * 1000:.2f}",
                "–" if c["requests_per_core_s"] is None else f"{c['requests_per_core_s']:,.0f}",
                "–" if cold is None else f"{cold:.1f}",
                escape(loads),
                escape(sizes),
            ]
        )
    if not rows:
        return ""
    gpu = res.get("gpu", "no GPU")
    gpu_text = (
        "no GPU"
        if gpu == "no GPU"
        else f"GPU up to {gpu['util_pct_max']:.0f} % busy, {gpu['memory_bytes_max'] / 2**20:,.0f} MiB used"
    )
    charts = "".join(
        f"<figure>{svg}<figcaption>{escape(title)}</figcaption></figure>" for title, svg in fig.cost_bars(summary)
    )
    return (
        "<h2>Cost: what each stack takes to run</h2>"
        + _table(
            rows,
            [
                "service",
                "RSS idle MiB",
                "RSS peak MiB",
                "CPU ms / request",
                "req/s per core",
                "cold start s",
                "model load",
                "artifact size",
            ],
        )
        + f"<div class='grid'>{charts}</div>"
        + "<p class='muted'>Whole process trees (TorchServe: its JVM and Python workers), read from outside with "
        "psutil once a second; CPU per request at the highest passing point (direct for the stacks, through the "
        f"gateway for the gateway); cold start from process start to the first correct answer. {escape(gpu_text)}."
        + (" TF figures come from the stand-in, not TF Serving." if stand_in else "")
        + "</p>"
    )


def _beyond(b: dict[str, Any] | None) -> str:
    """hey at the rate where the harness's search stopped short of the server, if it did."""
    if not b:
        return "–"
    verdict = "<span class='ok'>sustained</span>" if b["sustained"] else "<span class='inv'>not sustained</span>"
    return f"{b['rate_rps']:g} req/s: p99 {_n(b['p99'])} ms, {b['non_200']} non-200, {verdict}"


def _crosscheck(summary: dict[str, Any]) -> str:
    """The harness's p99 at each stack's capacity beside an independent tool's."""
    rows = []
    for c in summary.get("crosscheck") or []:
        ind = c["independent"]
        diff = "–" if c["p99_disagreement"] is None else f"{c['p99_disagreement']:.0%}"
        flag = "<span class='inv'>disagree</span>" if c["flagged"] else "<span class='ok'>agree</span>"
        rows.append(
            [
                escape(c["target"]),
                f"{c['rate_rps']:g}",
                _n(c["harness"]["p99"]),
                _n(ind["p99"]),
                f"{ind['achieved_rps']:,.0f}",
                f"{diff} {flag}",
                _beyond(c.get("beyond")),
                f"<code>{escape(ind['command'])}</code>",
            ]
        )
    if not rows:
        return ""
    return (
        "<h2>Cross-check with an independent tool at each stack's capacity</h2>"
        + _table(
            rows,
            [
                "target",
                "rate",
                "harness p99 ms",
                "tool p99 ms",
                "tool req/s",
                "p99 difference",
                "the tool where the harness stopped",
                "command",
            ],
        )
        + "<p class='muted'>hey paces its workers at the same rate; it measures from the actual send. A difference "
        "over 20 % is flagged.</p>"
    )


def _by_model(summary: dict[str, Any]) -> str:
    """The two stacks side by side, one row per model (each stack's best direct path under that model's SLO)."""
    compared = an.by_model(summary)
    if not compared:
        return ""
    tf = "TF Serving" + (" (stand-in)" if summary["run"]["tfserving_stand_in"] else "")
    rows = [
        [
            escape(c["model"]),
            f"{c['slo']:g} ms",
            *(escape(an.stack_cell(c["best"][fw], c["hint"][fw])) for fw in ("torchserve", "tfserving")),
            escape(c["conclusion"]),
        ]
        for c in compared
    ]
    return "<h2>The two stacks, model by model</h2>" + _table(rows, ["model", "p99 SLO", "TorchServe", tf, "who leads"])


def render_html(summary: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    run = summary["run"]
    models = sorted({p["target"]["model"] for p in summary["points"]})
    slos = {m: an.slo_for(run, m) for m in models} or {"-": run["slo_p99_ms"]}
    slo_text = ", ".join(f"{m} {v:g} ms" for m, v in slos.items())
    invalid = [p for p in summary["points"] if not p["valid"]]
    hl = an.headline(summary)
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>twinserve report {escape(run['id'])}"
        f"</title><style>{CSS}</style></head><body>",
        f"<h1>twinserve: TorchServe vs TF Serving</h1><div class='muted'>run {escape(run['id'])} · "
        f"{escape(run['started_at'])} · mode {escape(run['mode'])} · stack {escape(run.get('stack', 'native'))} · "
        f"schema {escape(summary['schema_version'])}</div>",
        f"<div class='{'verdict' if hl else 'bad verdict'}'>{escape(an.verdict(summary))}</div>",
    ]
    if run["tfserving_stand_in"]:
        out.append(
            f"<div class='warn'><b>Stand-in:</b> the TF Serving numbers come from twinserve's stand-in "
            f"({escape(run.get('stack', 'native'))} stack), "
            "not the real tensorflow/serving binary; they show the harness and the TF model, "
            "not TF Serving itself.</div>"
        )
    for note in run.get("notes", []):
        out.append(f"<div class='bad'>{escape(note)}</div>")
    noise = an.platform_noise(summary)
    if noise:
        css = "warn" if noise["noisy"] else "muted"
        out.append(f"<div class='{css}'><b>Platform:</b> {escape(an.platform_text(noise))}</div>")
    out.append(f"<h2>Headline: max throughput with p99 ≤ SLO ({escape(slo_text)}; VALID points only)</h2>")
    out.append(
        _table(
            [
                [
                    escape(r["label"]),
                    escape(r["target"]["model"]),
                    f"{r['rps']:,.0f}",
                    _n(r["p50"]),
                    _n(r["p99"]),
                    _n(r["p99_9"]),
                    f"{r['error_rate']:.2%}",
                    "–" if r["overhead"] is None else f"{r['overhead']:g}×",
                    escape(an.bracket_text(r["bracket"])),
                ]
                for r in hl
            ],
            [
                "target",
                "model",
                "req/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "errors",
                "overhead vs floor",
                "capacity bracket (offered): what bounded it",
            ],
        )
        if hl
        else "<p class='bad'>No VALID point meets the SLO.</p>"
    )
    out.append(
        f"<p class='muted'>Latency counts from the scheduled send (open loop, coordinated-omission free). "
        f"{len(invalid)} of {len(summary['points'])} points are INVALID and excluded from every number above."
        "</p>"
    )
    out.append(_by_model(summary))
    out.append(_brackets(summary))
    out.append(_crosscheck(summary))
    out.append(_cost(summary))
    for model in models:
        out.append(f"<h2>Model {escape(model)}</h2><div class='grid'>")
        out.append(
            f"<figure>{fig.latency_vs_throughput(summary, model)}<figcaption>p99 vs throughput; ✕ = INVALID "
            "(hover for the reason); dashed = through the gateway.</figcaption></figure>"
        )
        out.append(
            f"<figure>{fig.spectrum(summary, model)}<figcaption>Percentile spectrum of each target "
            "at its best VALID load under the SLO.</figcaption></figure></div>"
        )
    out.append("<div class='grid'><div><h2>Max throughput under the SLO</h2>" + fig.slo_bars(summary) + "</div>")
    out.append(
        "<div><h2>Where the time goes (mean, lowest VALID load)</h2>"
        + fig.decomposition(summary)
        + "<p class='muted'>Server parts from each server's own Prometheus counters scraped during the point; "
        "gateway parts from its Server-Timing; floor = in-process forward. Means, because they add up.</p>"
        "</div></div>"
    )
    out.append("<h2>Server batching: throughput vs p99, Pareto front</h2>" + fig.batching(summary))
    out.append(
        "<h2>All points</h2>"
        + _table(
            [
                [
                    escape(an.target_label(p["target"], run["tfserving_stand_in"]))
                    + " · "
                    + escape(p["target"]["model"]),
                    escape(str(p["load"].get("rate_rps") or f"c={p['load'].get('concurrency')}")),
                    f"{p['achieved_rps']:,.1f}",
                    _n(p["latency_ms"]["from_schedule"]["p50"]),
                    _n(an.p99(p)),
                    f"{p['error_rate']:.2%}",
                    _late(p),
                    _n(p["generator"]["cpu_pct"], ".0f"),
                    _server(p),
                    _validity(p),
                ]
                for p in summary["points"]
            ],
            [
                "target",
                "offered",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "late",
                "gen CPU %",
                "server queue / compute ms",
                "validity",
            ],
            "points",
        )
    )
    out.append(_environment(run))
    crit = ", ".join(f"{k}={v}" for k, v in run["criteria"].items())
    host = ", ".join(f"{k}={v}" for k, v in run["host"].items())
    out.append(
        f"<p class='muted'>Criteria: {escape(crit)}<br>Host: {escape(host)}<br>Command: "
        f"<code>{escape(run['command'])}</code></p></body></html>"
    )
    return "".join(out)
