"""The scripts the containers run, exercised here against fakes: TF Serving's and TorchServe's healthchecks,
TorchServe's key renewal and its entrypoint (stale key removed, clean stop on SIGTERM)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.conftest import REPO

TF_HEALTH = REPO / "deploy/tfserving/tfserving_health.sh"
TS_KEYS = REPO / "deploy/torchserve/ts_keys.py"
ENTRYPOINT = REPO / "deploy/torchserve/entrypoint.sh"
Reply = tuple[int, dict[str, Any]]


@contextmanager
def fake_server(route: Callable[[str, dict[str, str]], Reply]) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering GETs with route(path, headers) -> (status, JSON body)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = route(self.path, dict(self.headers))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def tf_status(states: dict[str, str]) -> Callable[[str, dict[str, str]], Reply]:
    def route(path: str, headers: dict[str, str]) -> Reply:
        model = path.rsplit("/", 1)[-1]
        if model not in states:
            return 404, {"error": f"Servable not found for request: Latest({model})"}
        return 200, {"model_version_status": [{"version": "1", "state": states[model], "status": {}}]}

    return route


def run_tf_health(port: int) -> subprocess.CompletedProcess[str]:
    config = REPO / "serving/tfserving/models.config"
    return subprocess.run(
        ["bash", str(TF_HEALTH), str(config), str(port)], check=False, capture_output=True, text=True, timeout=30
    )


def test_tf_health_passes_when_every_model_is_available() -> None:
    with fake_server(tf_status({"digits": "AVAILABLE", "resnet18": "AVAILABLE"})) as port:
        done = run_tf_health(port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "AVAILABLE: digits resnet18"


@pytest.mark.parametrize(
    ("states", "says"),
    [
        ({"digits": "AVAILABLE", "resnet18": "LOADING"}, "resnet18: no version AVAILABLE"),
        ({"digits": "AVAILABLE"}, "resnet18: GET /v1/models/resnet18 answered 'HTTP/1.0 404"),
    ],
)
def test_tf_health_fails_while_a_model_is_not_available(states: dict[str, str], says: str) -> None:
    with fake_server(tf_status(states)) as port:
        done = run_tf_health(port)
    assert done.returncode == 1
    assert says in done.stdout


def test_tf_health_fails_when_nothing_listens() -> None:
    with fake_server(tf_status({})) as port:
        pass  # closed again: the port is free now
    done = run_tf_health(port)
    assert done.returncode == 1
    assert "cannot connect" in done.stdout


def load_ts_keys() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ts_keys", TS_KEYS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def torchserve_files(tmp_path: Path) -> Callable[[int], tuple[Path, Path]]:
    """(key_file, config) for a fake TorchServe on `port` (inference and management on the same fake)."""

    def make(port: int) -> tuple[Path, Path]:
        key_file = tmp_path / "key_file.json"
        keys = {"inference": {"key": "inf-1"}, "management": {"key": "mgmt-1"}, "API": {"key": "api-1"}}
        key_file.write_text(json.dumps(keys))
        config = tmp_path / "config.properties"
        config.write_text(
            f"inference_address=http://0.0.0.0:{port}\nmanagement_address=http://0.0.0.0:{port}\n"
            "token_expiration_min=60\n"
        )
        return key_file, config

    return make


def ts_fake(status: str = "Healthy", renewed: list[str] | None = None) -> Callable[[str, dict[str, str]], Reply]:
    def route(path: str, headers: dict[str, str]) -> Reply:
        auth = headers.get("Authorization", "")
        if path == "/ping":
            if auth != "Bearer inf-1":
                return 401, {"code": 401, "message": "Token Authorization failed"}
            return (200 if status == "Healthy" else 500), {"status": status}
        if path.startswith("/token?type=") and auth == "Bearer api-1":
            if renewed is not None:
                renewed.append(path.split("=", 1)[1])
            return 200, {}
        return 401, {"code": 401}

    return route


def run_ping(key_file: Path, config: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(TS_KEYS), "ping", str(key_file), str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the image has the contract package beside the script
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30, env=env)


def test_ts_ping_is_healthy_with_the_inference_key(torchserve_files: Callable[[int], tuple[Path, Path]]) -> None:
    with fake_server(ts_fake()) as port:
        done = run_ping(*torchserve_files(port))
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("status", ["Partial Healthy", "Unhealthy"])
def test_ts_ping_fails_unless_fully_healthy(status: str, torchserve_files: Callable[[int], tuple[Path, Path]]) -> None:
    with fake_server(ts_fake(status)) as port:
        done = run_ping(*torchserve_files(port))
    assert done.returncode == 1


def test_ts_ping_fails_with_a_wrong_or_missing_key(torchserve_files: Callable[[int], tuple[Path, Path]]) -> None:
    with fake_server(ts_fake()) as port:
        key_file, config = torchserve_files(port)
        key_file.write_text(json.dumps({"inference": {"key": "expired"}, "API": {"key": "api-1"}}))
        assert run_ping(key_file, config).returncode == 1
        key_file.unlink()
        done = run_ping(key_file, config)
    assert done.returncode == 1 and "no inference key" in done.stdout


def test_keys_are_renewed_through_the_token_api(torchserve_files: Callable[[int], tuple[Path, Path]]) -> None:
    ts_keys = load_ts_keys()
    renewed: list[str] = []
    with fake_server(ts_fake(renewed=renewed)) as port:
        key_file, config = torchserve_files(port)
        ts_keys.renew("inference", key_file, config)
        ts_keys.renew("management", key_file, config)
        assert renewed == ["inference", "management"]
        key_file.write_text(json.dumps({"API": {"key": "wrong"}}))
        with pytest.raises(ValueError, match="token API answered 401"):
            ts_keys.renew("inference", key_file, config)


def test_settings_resolve_like_torchserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ts_keys = load_ts_keys()
    config = REPO / "serving/torchserve/config.properties"
    monkeypatch.delenv("TS_TOKEN_EXPIRATION_MIN", raising=False)
    assert ts_keys.setting("token_expiration_min", "0", config) == "60"
    assert ts_keys.local_url(ts_keys.setting("inference_address", "", config), "/ping") == "http://127.0.0.1:8080/ping"
    monkeypatch.setenv("TS_TOKEN_EXPIRATION_MIN", "10")  # enable_envvars_config=true: the variable wins
    assert ts_keys.setting("token_expiration_min", "0", config) == "10"
    assert ts_keys.setting("missing_key", "fallback", tmp_path / "absent.properties") == "fallback"


def test_shell_scripts_parse() -> None:
    for script in (*REPO.glob("scripts/*.sh"), TF_HEALTH):
        subprocess.run(["bash", "-n", str(script)], check=True)
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


FAKE_TORCHSERVE = """#!/bin/sh
echo "torchserve $*" >> "$FAKE_LOG"
case "$1" in
  --foreground)
    if [ -e key_file.json ]; then echo "stale key present" >> "$FAKE_LOG"; fi
    echo '{"inference": {"key": "fresh"}}' > key_file.json
    echo $$ > "$FAKE_PID"
    trap 'echo "frontend stopped" >> "$FAKE_LOG"; exit 0' TERM
    while :; do sleep 0.05; done ;;
  --stop) kill "$(cat "$FAKE_PID")" ;;
esac
"""
FAKE_PYTHON = """#!/bin/sh
echo "python3 $*" >> "$FAKE_LOG"
exec sleep 300
"""


def test_entrypoint_drops_a_stale_key_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("torchserve", FAKE_TORCHSERVE), ("python3", FAKE_PYTHON)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    work = tmp_path / "keys"
    work.mkdir()
    (work / "key_file.json").write_text('{"inference": {"key": "stale"}}')
    log = tmp_path / "log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_PID": str(tmp_path / "pid"),
    }
    proc = subprocess.Popen(["sh", str(ENTRYPOINT)], cwd=work, env=env)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "pid").exists() or "python3" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the entrypoint did not start TorchServe and the key rotator"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = log.read_text().splitlines()
    assert "stale key present" not in lines
    assert "torchserve --foreground --ts-config /home/model-server/config.properties --ncs" in lines
    assert "python3 /usr/local/share/twinserve/ts_keys.py rotate" in lines
    assert "torchserve --stop" in lines and lines[-1] == "frontend stopped"
    assert json.loads((work / "key_file.json").read_text())["inference"]["key"] == "fresh"
