"""The sweep runner's skeleton builds correct Locust command lines; the floor measures checked forwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadtest.run import main
from loadtest.samples import load_reference

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def test_dry_run_prints_one_command_per_target_and_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--targets",
                "torchserve-grpc-direct:digits,tfserving-rest-*",
                "--rates",
                "10,20",
                "--processes",
                "2",
                "--models",
                "digits",
                "--state",
                "/nonexistent/state.json",
                "--dry-run",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 * 3  # torchserve gRPC direct + tfserving REST direct/gateway, two rates each
    assert "GrpcUser" in lines[0] and "--lt-target torchserve-grpc-direct:digits" in lines[0]
    assert "--lt-rate 20.0" in lines[1] and "--processes 2" in lines[1]
    assert "-H http://127.0.0.1:8000" in lines[-1] and "RestUser" in lines[-1]


def test_dry_run_closed_loop_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--targets", "tfserving-grpc-gateway:digits", "--concurrency", "1,4", "--state", "/nonexistent/s.json"]
    assert main([*argv, "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("--lt-concurrency ")[1] for ln in lines] == ["1", "4"]
    assert all("--lt-mode closed" in ln for ln in lines)


def test_floor_measurement_records_checked_forwards() -> None:
    if not (ARTIFACTS / "samples" / "digits.npz").exists():
        pytest.skip("artifacts missing: run `make export` first")
    from loadtest.floor import measure

    ref = load_reference("digits", ARTIFACTS)
    table = {ref.inputs[i].tobytes(): ref.logits[i] for i in range(len(ref.inputs))}

    def forward(x: np.ndarray) -> np.ndarray:  # stands in for torch/TF: a lookup of the reference answers
        return np.stack([table[row.tobytes()] for row in x])

    rec = measure(forward, ref.inputs[:8], ref.logits[:8], iters=20, warmup=3, budget_s=20.0)
    assert rec.totals.counts["ok"] == 20 == rec.totals.from_send.get_total_count()
    wrong = measure(forward, ref.inputs[:8], ref.logits[8:16], iters=5, warmup=0, budget_s=20.0)
    assert wrong.totals.counts["wrong"] == 5  # the check can fail


def test_the_floor_runs_a_registered_models_own_artifacts_and_checks_every_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """textclf (a spec: two INT64 inputs) in-process on both engines, from its .mar and SavedModel; a reference
    shifted by one row makes the same forwards wrong, so the check can fail."""
    if not (ARTIFACTS / "registry" / "textclf.json").exists():
        pytest.skip("artifacts missing: run `make export` first")
    from loadtest import floor, registered

    entries = floor.floor_entries(ARTIFACTS, ["textclf"], [1, 4], iters=10, budget_s=20.0)
    assert [(e["framework"], e["batch"]) for e in entries] == [
        ("torchserve", 1), ("torchserve", 4), ("tfserving", 1), ("tfserving", 4),
    ]  # fmt: skip
    assert all(e["model"] == "textclf" and e["latency_ms"]["p50"] > 0 for e in entries)
    real = registered.load

    def shifted(name: str, artifacts: Path) -> registered.RegisteredReference:
        ref = real(name, artifacts)
        return registered.RegisteredReference(
            ref.model, ref.inputs, {k: np.roll(v, 1, axis=0) for k, v in ref.outputs.items()}
        )

    monkeypatch.setattr(registered, "load", shifted)
    with pytest.raises(RuntimeError, match="torchserve textclf: in-process answers differ"):
        floor.floor_entries(ARTIFACTS, ["textclf"], [4], iters=5, budget_s=20.0)
