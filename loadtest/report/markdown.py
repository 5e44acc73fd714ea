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
    if run["tfserving_stand_in"]:
        lines += [
            "> **Stand-in:** the TF Serving numbers come from the native stand-in, not the real "
            "tensorflow/serving binary.",
            "",
        ]
    lines += [f"> {note}" for note in run.get("notes", [])] + ([""] if run.get("notes") else [])
    lines += [
        f"Max throughput with p99 ≤ {run['slo_p99_ms']:g} ms, latency from the scheduled send "
        "(open loop); VALID points only.",
        "",
        "| target | model | req/s | p50 ms | p99 ms | p99.9 ms | errors | overhead vs floor |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in an.headline(summary):
        overhead = "–" if r["overhead"] is None else f"{r['overhead']:g}×"
        lines.append(
            f"| {r['label']} | {r['target']['model']} | {r['rps']:,.0f} | {_n(r['p50'])} | "
            f"{_n(r['p99'])} | {_n(r['p99_9'])} | {r['error_rate']:.2%} | {overhead} |"
        )
    invalid = [p for p in summary["points"] if not p["valid"]]
    lines += [
        "",
        f"{len(invalid)} of {len(summary['points'])} points INVALID (excluded above); "
        "see report.html for each reason.",
        "",
        f"Reproduce: `{run['command']}`",
        "",
    ]
    return "\n".join(lines)
