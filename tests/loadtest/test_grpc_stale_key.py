"""Stale TorchServe keys over gRPC: what the real TorchServe 0.12 answers, and a Locust gRPC user that keeps
going through real key renewals under load (bounded, loopback)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from contract._generated import twinserve_torchserve_pb2 as pb
from contract.tskeys import grpc_rejected

ROOT = Path(__file__).resolve().parents[2]
PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
pytestmark = pytest.mark.e2e


def _ts_keys() -> Any:
    """deploy/torchserve/ts_keys.py, the renewal the stack runs (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("ts_keys", ROOT / "deploy" / "torchserve" / "ts_keys.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _renew(native_stack: Any) -> None:
    work = native_stack.run_dir / "torchserve"
    _ts_keys().renew("inference", work / "key_file.json", work / "config.properties")


def test_what_torchserve_answers_a_stale_key_over_grpc(native_stack: Any) -> None:
    request = pb.PredictionsRequest(
        model_name="digits", input={"body": json.dumps({"instances": [[[[0.5] * 8] * 8]]}).encode()}
    )
    with grpc.insecure_channel(f"127.0.0.1:{native_stack.ports.ts_grpc_inference}") as channel:
        call = channel.unary_unary(
            PREDICTIONS,
            request_serializer=pb.PredictionsRequest.SerializeToString,
            response_deserializer=pb.PredictionResponse.FromString,
        )
        old = native_stack.token()
        assert call(request, metadata=[("authorization", f"Bearer {old}")], timeout=30).prediction
        _renew(native_stack)
        refusals = []
        for key in (old, "wrong", ""):
            with pytest.raises(grpc.RpcError) as err:
                call(request, metadata=[("authorization", f"Bearer {key}")], timeout=30)
            refusals.append((err.value.code(), err.value.details()))
        for code, details in refusals:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (code, details)  # not UNAUTHENTICATED
            assert "Token Authorization failed" in details and "InvalidKey" not in details
            assert grpc_rejected(code)
        assert call(request, metadata=[("authorization", f"Bearer {native_stack.token()}")], timeout=30).prediction
    for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
        assert not grpc_rejected(code)


def test_grpc_user_survives_key_renewals_under_load(native_stack: Any, artifacts: Path, tmp_path: Path) -> None:
    """A real Locust point against TorchServe's gRPC port while its inference key is renewed every ~1.5 s."""
    port = native_stack.ports.ts_grpc_inference
    out = tmp_path / "point.json"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "GrpcUser",
        "--headless", "--only-summary", "--skip-log-setup", "-u", "1", "-r", "1", "-t", "60s",
        "-H", f"http://127.0.0.1:{port}", "--lt-target", f"torchserve-grpc-direct:digits@{port}",
        "--lt-rate", "20", "--lt-schedule", "constant", "--lt-warmup", "1", "--lt-duration", "6", "--lt-window", "2",
        "--lt-artifacts", str(artifacts), "--lt-run-dir", str(native_stack.run_dir), "--lt-out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    renewals = 0
    try:
        # renew for as long as the point runs, so renewals land after the user read its first key whatever the
        # start-up time on a loaded machine
        while proc.poll() is None:
            time.sleep(1.5)
            if proc.poll() is None:
                _renew(native_stack)
                renewals += 1
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.exists(), output[-3000:]
    counts = json.loads(out.read_text(encoding="utf-8"))["snapshot"]["totals"]["counts"]
    assert renewals >= 4, renewals  # the 7 s point alone spans that many
    # Each renewal may cost the sends already in flight with the old key (about one at 20/s) and the one that
    # learns of it; a user that never re-reads the key fails every send after the first renewal (~100 here).
    assert counts["errors"] <= 3 * renewals, (counts, renewals, output[-2000:])
    assert counts["wrong"] == 0 and counts["ok"] >= 60, counts  # 120 sends measured; most answered
