"""The gateway's service entry: in the default services, launched with TWINSERVE_* pointing at this stack,
a v2 sample body written at `up` time, readiness that needs every model, and curl lines that say how."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.supervisor import gateway
from serving.supervisor.errors import PreflightError
from serving.supervisor.layout import REPO_ROOT, Layout
from serving.supervisor.ports import Ports
from serving.supervisor.services import DEFAULT_SERVICES, SERVICES


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    artifacts = tmp_path / "artifacts"
    (artifacts / "samples").mkdir(parents=True)
    (artifacts / "torchserve").mkdir()
    (artifacts / "torchserve" / "digits.mar").write_bytes(b"")
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 1, 8, 8) / 128
    np.savez(artifacts / "samples" / "digits.npz", inputs=x)
    return Layout(tmp_path / "run", artifacts, "127.0.0.1", Ports.ephemeral())


def test_gateway_is_a_default_service_started_last() -> None:
    assert DEFAULT_SERVICES[-1] == "gateway"
    assert set(DEFAULT_SERVICES) == {"torchserve", "torchserve-keys", "tfserving", "gateway"}
    assert SERVICES["gateway"].label == "Gateway"


def test_prepare_points_the_gateway_at_this_stack(layout: Layout) -> None:
    launch = gateway.prepare(layout)
    assert launch.argv[-2:] == ["-m", "gateway"] and launch.cwd == REPO_ROOT
    env, p = launch.env, layout.ports
    assert env["TWINSERVE_SERVER__PORT"] == str(p.gateway_rest)
    assert env["TWINSERVE_SERVER__GRPC_PORT"] == str(p.gateway_grpc)
    assert env["TWINSERVE_BACKENDS__TORCHSERVE__REST_URL"] == f"http://127.0.0.1:{p.ts_inference}"
    assert env["TWINSERVE_BACKENDS__TORCHSERVE__GRPC_TARGET"] == f"127.0.0.1:{p.ts_grpc_inference}"
    assert env["TWINSERVE_BACKENDS__TORCHSERVE__KEY_FILE"] == str(layout.run_dir / "torchserve" / "key_file.json")
    assert env["TWINSERVE_BACKENDS__TFSERVING__REST_URL"] == f"http://127.0.0.1:{p.tf_rest}"
    assert env["TWINSERVE_BACKENDS__TFSERVING__GRPC_TARGET"] == f"127.0.0.1:{p.tf_grpc}"
    assert SERVICES["gateway"].ports(layout) == {"rest": p.gateway_rest, "grpc": p.gateway_grpc}


def test_settings_from_that_environment_validate(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import Settings

    for key, value in gateway.prepare(layout).env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.server.port == layout.ports.gateway_rest
    assert settings.backends.torchserve.key_file == layout.run_dir / "torchserve" / "key_file.json"


def test_v2_sample_body_is_written_from_the_npz(layout: Layout) -> None:
    gateway.prepare(layout)
    body = json.loads((layout.run_dir / "samples" / "digits_v2.json").read_text())
    (tensor,) = body["inputs"]
    assert tensor["name"] == "input" and tensor["datatype"] == "FP32" and tensor["shape"] == [1, 1, 8, 8]
    want = np.load(layout.artifacts / "samples" / "digits.npz")["inputs"][:1].ravel()
    np.testing.assert_array_equal(np.asarray(tensor["data"], np.float32), want)


def test_missing_npz_is_a_preflight_error(layout: Layout) -> None:
    (layout.artifacts / "samples" / "digits.npz").unlink()
    with pytest.raises(PreflightError, match=r"digits\.npz is missing"):
        gateway.prepare(layout)


def test_readiness_says_why_when_nothing_listens(layout: Layout) -> None:
    result = gateway.readiness(layout)
    assert not result.ready and "/v2/health/ready" in result.detail


def test_usage_has_the_v2_curl_one_per_stack_and_tritonclient(layout: Layout) -> None:
    lines = gateway.usage(layout, lambda path: str(path))
    infer = [line for line in lines if "/v2/models/digits/infer" in line]
    assert len(infer) == 3 and all("-H 'Content-Type: application/json'" in line for line in infer)
    assert all(f"@{layout.run_dir / 'samples' / 'digits_v2.json'}" in line for line in infer)
    assert any("X-Backend: torchserve" in line for line in infer)
    assert any("X-Backend: tfserving" in line for line in infer)
    assert any("tritonclient" in line and str(layout.ports.gateway_grpc) in line for line in lines)
