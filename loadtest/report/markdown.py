"""report.md: the verdict, caveats and headline table (VALID points only), for docs/ and pull requests."""

from __future__ import annotations

from typing import Any

from loadtest.report import analysis as an


def _n(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The headline of `summary` as Markdown."""
    run = summary["run"]
    lines = [f"# twinserve load test: run {run['id']}", "", f"**{an.verdict(summary)}**", ""]
    lines += [f"Stack: {run.get('stack', 'native')}", ""]
    if run["tfserving_stand_in"]:
        lines += [
            f"> **Stand-in:** the TF Serving numbers come from twinserve's stand-in ({run.get('stack', 'native')} "
            "stack), not the real "
            "tensorflow/serving binary.",
            "",
        ]
    lines += [f"> {note}" for note in run.get("notes", [])] + ([""] if run.get("notes") else [])
    noise = an.platform_noise(summary)
    if noise and noise["noisy"]:
        lines += [f"> **Noisy machine:** {an.platform_text(noise)}", ""]
    models = sorted({p["target"]["model"] for p in summary["points"]})
    slos = ", ".join(f"{m} {an.slo_for(run, m):g} ms" for m in models) or f"{run['slo_p99_ms']:g} ms"
    lines += [
        f"Max throughput with p99 ≤ SLO ({slos}), latency from the scheduled send (open loop); VALID points only.",
        "",
        "| target | model | req/s | p50 ms | p99 ms | p99.9 ms | errors | overhead vs floor | capacity bracket |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in an.headline(summary):
        overhead = "–" if r["overhead"] is None else f"{r['overhead']:g}×"
        lines.append(
            f"| {r['label']} | {r['target']['model']} | {r['rps']:,.0f} | {_n(r['p50'])} | "
            f"{_n(r['p99'])} | {_n(r['p99_9'])} | {r['error_rate']:.2%} | {overhead} | "
            f"{an.bracket_text(r['bracket'])} |"
        )
    compared = an.by_model(summary)
    if compared:
        stand_in = " (stand-in)" if run["tfserving_stand_in"] else ""
        lines += [
            "",
            "The two stacks, model by model (each stack's best direct path, either protocol):",
            "",
            f"| model | p99 SLO | TorchServe | TF Serving{stand_in} | who leads |",
            "|---|--:|---|---|---|",
        ]
        for row in compared:
            ts, tf = (an.stack_cell(row["best"][fw], row["hint"][fw]) for fw in ("torchserve", "tfserving"))
            lines.append(f"| {row['model']} | {row['slo']:g} ms | {ts} | {tf} | {row['conclusion']} |")
    checks = summary.get("crosscheck") or []
    if checks:
        lines += ["", "Cross-check at each stack's capacity (hey at the same rate, p99 ms):", ""]
        lines += ["| target | rate | harness p99 | hey p99 | difference |", "|---|--:|--:|--:|--:|"]
        for c in checks:
            diff = "–" if c["p99_disagreement"] is None else f"{c['p99_disagreement']:.0%}"
            flag = " ⚠ over 20 %" if c["flagged"] else ""
            lines.append(
                f"| {c['target']} | {c['rate_rps']:g} | {_n(c['harness']['p99'])} | "
                f"{_n(c['independent']['p99'])} | {diff}{flag} |"
            )
            b = c.get("beyond")
            if b:
                said = "sustained" if b["sustained"] else "not sustained"
                lines.append(f"| ↳ hey where the harness stopped | {b['rate_rps']:g} | – | {_n(b['p99'])} | {said} |")
    res = summary.get("resources") or {}
    if any(res.get(n) for n in ("torchserve", "tfserving", "gateway")):
        lines += [
            "",
            "Cost (whole process trees; CPU per request at the highest passing point):",
            "",
            "| service | RSS idle MiB | RSS peak MiB | CPU ms/request | req/s per core | cold start s |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for name in ("torchserve", "tfserving", "gateway"):
            c = res.get(name)
            if not c:
                continue
            mib = ["–" if c[k] is None else f"{c[k] / 2**20:,.0f}" for k in ("rss_idle_bytes", "rss_peak_bytes")]
            cpu = "–" if c["cpu_seconds_per_request"] is None else f"{c['cpu_seconds_per_request'] * 1000:.2f}"
            core = "–" if c["requests_per_core_s"] is None else f"{c['requests_per_core_s']:,.0f}"
            cold = "–" if c.get("cold_start_s") is None else f"{c['cold_start_s']:.1f}"
            label = an.service_label(name, run["tfserving_stand_in"])
            lines.append(f"| {label} | {mib[0]} | {mib[1]} | {cpu} | {core} | {cold} |")
        lines.append(f"\nGPU: {res.get('gpu') if res.get('gpu') != 'no GPU' else 'no GPU'}.")
    decomposition = summary.get("decomposition", [])
    if decomposition:
        lines += [
            "",
            "Where the time goes (mean ms at the lowest VALID load; rest = client + network):",
            "",
            "| target | total | floor | server compute | server queue | server (unsplit) | gateway→server "
            "| gateway | rest |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        keys = ("floor_ms", "compute_ms", "queue_ms", "server_ms", "upstream_ms", "gateway_ms")
        for d in decomposition:
            rest = d["total_ms"] - sum(d.get(k) or 0.0 for k in keys)
            cells = " | ".join(_n(d.get(k)) for k in keys)
            lines.append(f"| {d['target']} | {_n(d['total_ms'])} | {cells} | {_n(rest)} |")
    env = run.get("environment", {})
    if env.get("cpu"):
        cpu = env["cpu"]
        lines += ["", f"Host: {cpu.get('model')} × {cpu.get('count')}; GPU: {env.get('gpu') or 'none'}."]
    invalid = [p for p in summary["points"] if not p["valid"]]
    lines += [
        "",
        f"{len(invalid)} of {len(summary['points'])} points INVALID (excluded above); see report.html for each reason.",
        "",
        f"Reproduce: `{run['command']}`",
        "",
    ]
    return "\n".join(lines)
