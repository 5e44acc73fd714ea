"""The comparison report: summary.json (validated against the versioned schema) -> report.html + report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtest.report.html import render_html
from loadtest.report.markdown import render_markdown
from loadtest.report.schema import Summary


def validate(summary: dict[str, Any]) -> dict[str, Any]:
    """Check `summary` against the schema (raises pydantic.ValidationError) and return it unchanged."""
    Summary.model_validate(summary)
    return summary


def write_report(summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Validate, then write summary.json, report.html and report.md into `out_dir`."""
    validate(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / "summary.json",
        "html": out_dir / "report.html",
        "md": out_dir / "report.md",
    }
    paths["summary"].write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html(summary), encoding="utf-8")
    paths["md"].write_text(render_markdown(summary), encoding="utf-8")
    return paths
