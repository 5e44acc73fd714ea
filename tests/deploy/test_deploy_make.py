"""`make up` / `make down` choose compose when a Docker engine answers and the native stack otherwise.

scripts/up.sh and scripts/down.sh run against a fake `docker` (answering or not) and a fake venv Python, both
recording how they were called; nothing is started.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$FAKE_LOG"
[ -z "$TWINSERVE_LIMITS__API_KEYS" ] || echo "keys $TWINSERVE_LIMITS__API_KEYS" >> "$FAKE_LOG"
case "$1" in
  info) exit "${FAKE_INFO_RC:-0}" ;;
  image) exit "${FAKE_INSPECT_RC:-0}" ;;
  compose) [ "$2" = version ] && exit "${FAKE_COMPOSE_RC:-0}"; exit 0 ;;
esac
"""
FAKE_PY = """#!/bin/sh
echo "py $*" >> "$FAKE_LOG"
"""
NATIVE_UP = "py -m supervisor up --artifacts {artifacts}"


@pytest.fixture
def ready_gateway() -> Iterator[str]:
    """A gateway stand-in on an ephemeral port that answers 200 to every readiness probe."""

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.endswith("/ready") else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(script: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run scripts/<script> with the fakes; returns the result and the recorded calls."""
    for name, text in (("docker", FAKE_DOCKER), ("python", FAKE_PY)):
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o755)
    artifacts = tmp_path / "artifacts"
    for sub in ("torchserve", "tfserving", "samples"):
        (artifacts / sub).mkdir(parents=True, exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    full = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "PY": str(tmp_path / "python"),
        "DOCKER": str(tmp_path / "docker"),
        "ARTIFACTS": str(artifacts),
        "RUN_DIR": str(tmp_path / "run"),
        # Nothing of a test run lands in the repository; no gateway answers, so readiness is not waited for long.
        "TWINSERVE_COMPOSE_STATE_DIR": str(tmp_path / "run-compose"),
        "TWINSERVE_ENGINE_DIR": str(tmp_path / "engine"),
        "TWINSERVE_IMAGE_TIMES": str(tmp_path / "image-times.txt"),
        "TWINSERVE_GATEWAY_URL": "http://127.0.0.1:9",
        "TWINSERVE_READY_TIMEOUT": "0",
        **env,
    }
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / script)], check=False, capture_output=True, text=True, env=full, timeout=30
    )
    return done, log.read_text().splitlines()


def test_no_engine_starts_natively_with_a_notice(tmp_path: Path) -> None:
    done, calls = run("up.sh", tmp_path, FAKE_INFO_RC="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "no Docker engine answers (" + str(tmp_path / "docker") + " info failed): starting natively; "
        "TF Serving is a stand-in"
    )
    assert calls[-1] == NATIVE_UP.format(artifacts=tmp_path / "artifacts")
    assert not any(c.startswith("docker compose") for c in calls)


def test_no_docker_command_starts_natively(tmp_path: Path) -> None:
    done, calls = run("up.sh", tmp_path, DOCKER=str(tmp_path / "no-such-docker"))
    assert done.returncode == 0
    assert "starting natively; TF Serving is a stand-in" in done.stdout
    assert calls == [NATIVE_UP.format(artifacts=tmp_path / "artifacts")]


def test_engine_without_compose_v2_starts_natively(tmp_path: Path) -> None:
    done, calls = run("up.sh", tmp_path, FAKE_COMPOSE_RC="1")
    assert "Docker Compose v2 is missing" in done.stdout
    assert calls[-1].startswith("py -m supervisor up")


@pytest.mark.parametrize(
    ("gpu", "files"),
    [
        (None, "-f docker-compose.yml"),
        ("1", "-f docker-compose.yml"),
        ("0", "-f docker-compose.yml -f docker-compose.cpu.yml"),
    ],
)
def test_engine_answers_compose_up_waits(tmp_path: Path, gpu: str | None, files: str) -> None:
    done, calls = run("up.sh", tmp_path, **({"GPU": gpu} if gpu is not None else {}))
    # No gateway answers here: everything up to the gateway's readiness check ran, then a clear failure.
    assert done.returncode == 1 and "the gateway does not report both backends ready" in done.stderr
    assert f"docker compose {files} build" in calls  # built before up: up never builds or pulls
    ups = [c for c in calls if " up " in f"{c} "]
    assert ups == [f"docker compose {files} up -d --no-build --wait --wait-timeout 900"]
    # The host's python only renders the TF side's models.config (zoo + registered models, issue 13); the native
    # supervisor never starts on the compose path.
    assert [c for c in calls if c.startswith("py ")] == [
        c for c in calls if c.startswith("py -m serving.tfserving.model_config ")
    ]
    assert not any(c.startswith("py -m supervisor") for c in calls)
    assert "compose: TF side: real TensorFlow Serving" in done.stdout


def test_compose_up_reports_ready_and_writes_the_host_state(tmp_path: Path, ready_gateway: str) -> None:
    done, calls = run(
        "up.sh", tmp_path, STACK="compose", GPU="0", TF_SIDE="standin", TWINSERVE_GATEWAY_URL=ready_gateway
    )
    assert done.returncode == 0, done.stderr
    assert "TF side: the twinserve TF Serving STAND-IN (not TensorFlow Serving)" in done.stdout
    files = "-f docker-compose.yml -f docker-compose.cpu.yml -f docker-compose.standin.yml"
    assert f"docker compose {files} up -d --no-build --wait --wait-timeout 900" in calls
    assert f"docker compose {files} exec -T torchserve cat key_file.json" in calls
    state = json.loads((tmp_path / "run-compose" / "state.json").read_text())
    assert state["source"] == "compose" and state["tf_side"] == "standin" and state["gpu"] is False
    assert state["compose_files"] == files.split()[1::2]
    assert "curl http://127.0.0.1:8000/v2/health/ready" in done.stdout
    assert "TOKEN=$(python3" in done.stdout and "Authorization: Bearer $TOKEN" in done.stdout  # never printed
    assert "ready " in (tmp_path / "image-times.txt").read_text()


def test_loopback_bind_needs_no_gateway_key(tmp_path: Path, ready_gateway: str) -> None:
    done, calls = run("up.sh", tmp_path, TWINSERVE_BIND="127.0.0.1", TWINSERVE_GATEWAY_URL=ready_gateway)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "run-compose" / "gateway" / "api_key").exists()
    assert not any(c.startswith("keys ") for c in calls)
    assert "curl http://127.0.0.1:8000/v2/models/digits" in done.stdout


def test_wide_bind_generates_a_private_gateway_key_the_curl_lines_use(tmp_path: Path, ready_gateway: str) -> None:
    done, calls = run("up.sh", tmp_path, TWINSERVE_BIND="0.0.0.0", TWINSERVE_GATEWAY_URL=ready_gateway)
    assert done.returncode == 0, done.stderr
    key_file = tmp_path / "run-compose" / "gateway" / "api_key"
    key = key_file.read_text().strip()
    assert len(key) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert f'keys ["{key}"]' in calls  # handed to compose, which passes it to the gateway container
    gateway_lines = [line for line in done.stdout.splitlines() if ":8000/v2/models" in line]
    assert gateway_lines and all(f"Authorization: Bearer $(cat {key_file})" in line for line in gateway_lines)
    assert key not in done.stdout + done.stderr  # read by the shell, never printed
    again, _ = run("up.sh", tmp_path, TWINSERVE_BIND="0.0.0.0", TWINSERVE_GATEWAY_URL=ready_gateway)
    assert again.returncode == 0 and key_file.read_text().strip() == key  # kept across restarts


def test_native_start_binds_where_told(tmp_path: Path) -> None:
    done, calls = run("up.sh", tmp_path, FAKE_INFO_RC="1", TWINSERVE_BIND="0.0.0.0")
    assert done.returncode == 0, done.stderr
    assert calls[-1] == NATIVE_UP.format(artifacts=tmp_path / "artifacts") + " --host 0.0.0.0"


def test_stack_compose_without_an_engine_fails_clearly(tmp_path: Path) -> None:
    done, calls = run("up.sh", tmp_path, STACK="compose", FAKE_INFO_RC="1")
    assert done.returncode == 1 and "no container engine answers" in done.stderr and "make engine" in done.stderr
    assert not any(c.startswith("py ") for c in calls)  # never falls back to native when compose was asked for


def test_real_tf_side_without_a_registry_fails_and_names_the_override(tmp_path: Path) -> None:
    done, calls = run("up.sh", tmp_path, STACK="compose", GPU="0", TWINSERVE_OFFLINE_IMAGES="1", FAKE_INSPECT_RC="1")
    assert done.returncode == 1
    assert "tensorflow/serving:2.20.0 cannot be pulled here" in done.stderr and "TF_SIDE=standin" in done.stderr
    assert not any(" up " in f"{c} " or c.endswith(" build") for c in calls)  # nothing substituted, nothing built


def test_bad_tf_side_is_refused(tmp_path: Path) -> None:
    done, _ = run("up.sh", tmp_path, STACK="compose", TF_SIDE="fake")
    assert done.returncode == 2 and "TF_SIDE must be real or standin" in done.stderr


@pytest.mark.parametrize("stack", ["auto", "compose"])
def test_bad_gpu_value_is_refused(tmp_path: Path, stack: str) -> None:
    done, calls = run("up.sh", tmp_path, GPU="yes", STACK=stack)
    assert done.returncode == 2 and "GPU must be 1 or 0" in done.stderr
    assert not any(" up " in f"{c} " for c in calls)


def test_missing_artifacts_are_named(tmp_path: Path) -> None:
    done, _ = run("up.sh", tmp_path, ARTIFACTS=str(tmp_path / "nothing"))
    assert done.returncode == 1 and "missing: run make export" in done.stderr


def test_down_stops_compose_and_native(tmp_path: Path) -> None:
    done, calls = run("down.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    files = "-f docker-compose.yml -f docker-compose.standin.yml"
    assert f"docker compose {files} --profile observe down --remove-orphans" in calls
    assert calls[-1] == "py -m supervisor down"


def test_down_without_engine_stops_native_only(tmp_path: Path) -> None:
    _, calls = run("down.sh", tmp_path, FAKE_INFO_RC="1")
    assert not any(c.startswith("docker compose") for c in calls)
    assert calls[-1] == "py -m supervisor down"


def test_make_targets_call_the_scripts() -> None:
    # -n: print, run nothing; the prerequisites' recipes are printed too when they are out of date
    up = subprocess.run(
        ["make", "-n", "up", "GPU=0"], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "GPU=0 STACK= TF_SIDE= bash scripts/up.sh" in up.stdout, up.stdout + up.stderr
    down = subprocess.run(["make", "-n", "down"], check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "bash scripts/down.sh" in down.stdout
    lint = subprocess.run(["make", "-n", "lint"], check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "hadolint serving/torchserve/Dockerfile serving/tfserving/Dockerfile" in lint.stdout
    assert "bash scripts/check-compose.sh" in lint.stdout
