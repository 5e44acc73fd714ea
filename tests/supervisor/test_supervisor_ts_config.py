"""serving/torchserve/config.properties and its native rewrite: right keys, token auth on, model API off."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
import ts

from serving.torchserve.launch import WORKER_ENV, key_file, prepare, read_token, secure_key_file
from serving.torchserve.launch_config import TEMPLATE, read_properties, render_config
from supervisor import ConfigError, Layout, Ports, PreflightError
from supervisor.layout import REPO_ROOT

CONFIG = REPO_ROOT / TEMPLATE
PORTS = Ports(
    ts_inference=18080, ts_management=18081, ts_metrics=18082, ts_grpc_inference=17070, ts_grpc_management=17071
)


def test_repo_config_matches_the_contract() -> None:
    props = read_properties(CONFIG.read_text())
    assert props["inference_address"] == "http://0.0.0.0:8080"
    assert props["management_address"] == "http://0.0.0.0:8081"
    assert props["metrics_address"] == "http://0.0.0.0:8082"
    assert (props["grpc_inference_port"], props["grpc_management_port"]) == ("7070", "7071")
    assert props["disable_token_authorization"] == "false"
    assert props["enable_model_api"] == "false"
    assert props["metrics_mode"] == "prometheus"
    assert props["model_store"] == "/home/model-server/model-store"
    assert props["load_models"] == "all"
    assert int(props["max_request_size"]) >= 64 * 1024 * 1024


def test_every_key_is_one_torchserve_0_12_knows() -> None:
    """No invented keys: each key must appear as a string constant in the frontend's ConfigManager."""
    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    with zipfile.ZipFile(jar) as zf:
        config_manager = zf.read("org/pytorch/serve/util/ConfigManager.class")
    unknown = [key for key in read_properties(CONFIG.read_text()) if key.encode() not in config_manager]
    assert unknown == []


def test_native_rewrite_overrides_addresses_and_store(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "run", tmp_path / "art", ports=PORTS)
    props = read_properties(render_config(CONFIG.read_text(), layout, tmp_path / "art" / "torchserve"))
    assert props["inference_address"] == "http://127.0.0.1:18080"
    assert props["management_address"] == "http://127.0.0.1:18081"
    assert props["metrics_address"] == "http://127.0.0.1:18082"
    assert props["grpc_inference_address"] == props["grpc_management_address"] == "127.0.0.1"
    assert (props["grpc_inference_port"], props["grpc_management_port"]) == ("17070", "17071")
    assert props["model_store"] == str(tmp_path / "art" / "torchserve")
    # Everything else is the container's file, unchanged.
    assert props["disable_token_authorization"] == "false"
    assert props["enable_model_api"] == "false"
    original = read_properties(CONFIG.read_text())
    untouched = {k for k in original if "address" not in k and "port" not in k and k != "model_store"}
    assert {k: props[k] for k in untouched} == {k: original[k] for k in untouched}


def test_missing_override_keys_are_appended(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "run", tmp_path / "art", ports=PORTS)
    props = read_properties(render_config("job_queue_size=5\n", layout, tmp_path))
    assert props["inference_address"] == "http://127.0.0.1:18080"
    assert props["grpc_management_port"] == "17071"
    assert props["job_queue_size"] == "5"


@pytest.mark.parametrize(
    "line", ["disable_token_authorization=true", "enable_model_api=true", "enable_model_api = TRUE"]
)
def test_rewrite_refuses_token_auth_off_or_model_api_on(tmp_path: Path, line: str) -> None:
    layout = Layout(tmp_path / "run", tmp_path / "art", ports=PORTS)
    with pytest.raises(ConfigError):
        render_config(CONFIG.read_text() + line + "\n", layout, tmp_path)


def test_prepare_writes_config_and_keeps_ts_env_out(tmp_path: Path) -> None:
    (tmp_path / "art" / "torchserve").mkdir(parents=True)
    layout = Layout(tmp_path / "run", tmp_path / "art", ports=PORTS, require_models=False)
    launch = prepare(layout)
    written = read_properties((tmp_path / "run" / "torchserve" / "config.properties").read_text())
    assert written["inference_address"] == "http://127.0.0.1:18080"
    assert launch.cwd == tmp_path / "run" / "torchserve"  # key_file.json lands in the run dir
    assert "--foreground" in launch.argv and "--no-config-snapshots" in launch.argv
    assert "--disable-token-auth" not in launch.argv and "--enable-model-api" not in launch.argv
    assert launch.env["LOG_LOCATION"].startswith(str(tmp_path / "run"))
    assert launch.env["METRICS_LOCATION"].startswith(str(tmp_path / "run"))
    assert "TS_" in launch.drop_env_prefixes
    assert launch.env["OMP_WAIT_POLICY"] == WORKER_ENV["OMP_WAIT_POLICY"] == "PASSIVE"  # no spinning workers


def test_prepare_without_models_says_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "art" / "torchserve").mkdir(parents=True)
    with pytest.raises(PreflightError, match="make export"):
        prepare(Layout(tmp_path / "run", tmp_path / "art", ports=PORTS))


def test_key_file_is_tightened_to_0600(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "run", tmp_path / "art", ports=PORTS)
    path = key_file(layout)
    path.parent.mkdir(parents=True)
    path.write_text('{"inference": {"key": "k1"}, "management": {"key": "k2"}, "API": {"key": "k3"}}')
    path.chmod(0o644)
    assert secure_key_file(layout) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secure_key_file(layout) is False
    assert read_token(path) == "k1" and read_token(path, "API") == "k3"
