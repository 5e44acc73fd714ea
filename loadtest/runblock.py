"""summary.json's `run` block, built in one place for every harness that writes a summary (bench, batching, UI)."""

from __future__ import annotations

import os
import platform
from datetime import datetime
from typing import Any

from loadtest import environment
from loadtest.stack import StackInfo
from loadtest.validity import Criteria


def run_block(
    run_id: str,
    started: datetime,
    *,
    mode: str,
    command: str,
    criteria: Criteria,
    slo_ms_by_model: dict[str, float],
    stack: StackInfo | None,
    stand_in: bool,
    notes: list[str],
) -> dict[str, Any]:
    """The run block: when, how (mode, command, criteria), what machine, the SLO per model (the first model's is
    the headline `slo_p99_ms`), whether the TF side was the stand-in, notes, and the recorded environment."""
    return {
        "id": run_id,
        "started_at": started.isoformat(timespec="seconds"),
        "mode": mode,
        "stack": stack.source if stack is not None else "native",
        "command": command,
        "host": {"cpus": os.cpu_count() or 0, "platform": platform.platform(), "python": platform.python_version()},
        "criteria": criteria.as_dict(),
        "slo_p99_ms": next(iter(slo_ms_by_model.values())),
        "slo_p99_ms_by_model": dict(slo_ms_by_model),
        "tfserving_stand_in": stand_in,
        "notes": notes,
        "environment": environment.describe(stack),
    }
