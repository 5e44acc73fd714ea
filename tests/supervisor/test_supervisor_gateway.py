"""The gateway's service entry: in the default services, launched with TWINSERVE_* pointing at this stack,
a v2 sample body written at `up` time, readiness that needs every model, and curl lines that say how."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from contract.ports import Ports
from gateway import launch as gateway
from supervisor.errors import PreflightError
from supervisor.layout import REPO_ROOT, Layout
from supervisor.services import DEFAULT_SERVICES, SERVICES


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


def test_wide_host_gets_a_private_api_key_the_gateway_accepts(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond loopback the gateway refuses to start without keys: `up --host 0.0.0.0` makes one (0600) and uses it."""
    import dataclasses
    import stat

    from gateway.exposure import refusal
    from gateway.settings import Settings

    wide = dataclasses.replace(layout, host="0.0.0.0")
    env = gateway.prepare(wide).env
    key_file = layout.run_dir / "gateway" / "api_key"
    key = key_file.read_text().strip()
    assert len(key) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for name in [k for k in os.environ if k.startswith("TWINSERVE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.server.host == "0.0.0.0" and settings.api_keys() == [key] and refusal(settings) is None
    assert gateway.auth_headers(wide) == {"Authorization": f"Bearer {key}"}
    gateway.prepare(wide)
    assert key_file.read_text().strip() == key  # a restart keeps the key clients already have
    lines = gateway.usage(wide, lambda path: str(path))
    keyed = [line for line in lines if "/v2/models/digits/infer" in line or "/metrics" in line]
    assert len(keyed) == 4 and all(f"Authorization: Bearer $(cat {key_file})" in line for line in keyed)
    assert not any(key in line for line in lines)


def test_loopback_host_needs_no_key(layout: Layout) -> None:
    env = gateway.prepare(layout).env
    assert "TWINSERVE_AUTH__API_KEY_FILE" not in env and "TWINSERVE_LIMITS__API_KEY_FILE" not in env
    assert not (layout.run_dir / "gateway" / "api_key").exists()
    assert not any("Authorization" in line for line in gateway.usage(layout, str))
