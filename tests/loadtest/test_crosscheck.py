"""The independent cross-check: hey, paced at a rate, against the real servers, with TorchServe's token, and a
summary row the schema accepts. Asserts what was sent and parsed, never how fast anything was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loadtest.crosscheck import DISAGREEMENT, check_at_capacity
from loadtest.report.schema import CrossCheck
from loadtest.stack import from_state
from tests.conftest import NativeStack

pytestmark = [pytest.mark.e2e]


@pytest.mark.skipif(shutil.which("hey") is None, reason="hey is not installed (make setup installs it)")
@pytest.mark.parametrize("framework", ["torchserve", "tfserving"])
def test_hey_at_the_reported_rate_answers_correctly_and_keeps_the_key_out(
    native_stack: NativeStack, artifacts: Path, framework: str
) -> None:
    info = from_state(native_stack.run_dir / "state.json")
    t = info.target(framework, "rest", "direct", "digits")
    ours = {"load": {"rate_rps": 40.0}, "latency_ms": {"from_schedule": {"p50": 5.0, "p99": 10.0}}, "achieved_rps": 40}
    row = check_at_capacity(ours, t, artifacts, info.run_dir, seconds=3.0, beyond=60.0, slo_ms=1000.0)
    CrossCheck.model_validate(row)
    tool = row["independent"]
    assert tool["non_200"] == 0 and tool["requests"] >= 40 * 3 * 0.8  # paced at the rate, every answer a 200
    assert tool["workers"] == 4 and tool["p99"] is not None and tool["p50"] <= tool["p99"]
    assert row["p99_disagreement"] == pytest.approx(abs(10.0 - tool["p99"]) / tool["p99"], abs=1e-3)
    assert row["flagged"] == (row["p99_disagreement"] > DISAGREEMENT)
    assert native_stack.token() not in tool["command"] and "/tmp" not in tool["command"]
    beyond = row["beyond"]  # where the harness stopped short of the server: hey says whether the server goes on
    assert beyond["rate_rps"] == 60.0 and beyond["non_200"] == 0 and beyond["requests"] >= 60 * 3 * 0.8
    assert beyond["sustained"] == (beyond["p99"] <= 1000.0)
