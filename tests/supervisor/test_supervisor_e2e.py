"""End to end through the CLI: TorchServe with the exported .mar files and the TF Serving stand-in, on free
ports; the curl commands `up` prints are run as printed; `status` and `down` close the loop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from serving.torchserve.launch import read_token
from supervisor import Ports
from supervisor.layout import REPO_ROOT

ARTIFACTS = REPO_ROOT / "artifacts"
_MARS = sorted((ARTIFACTS / "torchserve").glob("*.mar"))
_MISSING = [
    str(p.relative_to(REPO_ROOT))
    for p in [
        # a model registered through add-model is probed with its reference inputs, the zoo with its JSON sample
        *(
            ARTIFACTS / "reference" / f"{m.stem}.npz"
            if (ARTIFACTS / "registry" / f"{m.stem}.json").is_file()
            else ARTIFACTS / "samples" / f"{m.stem}.json"
            for m in _MARS
        ),
        *(ARTIFACTS / "tfserving" / m.stem for m in _MARS),
    ]
    if not p.exists()
]
pytestmark = [
    pytest.mark.skipif(
        not _MARS or bool(_MISSING),
        reason=f"exported artifacts missing ({', '.join(_MISSING) or 'artifacts/torchserve/*.mar'}): run `make export`",
    ),
    pytest.mark.timeout(420),
]


def _cli(*args: str, timeout: float = 260) -> subprocess.CompletedProcess[str]:
    # From the checkout, as a user would: printed paths are relative to it.
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def stack_up() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """`up` of both services in a private run dir on free ports; always `down` afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="sve-")) / "run"
    port_args = [arg for name, port in Ports.ephemeral().as_dict().items() for arg in ("--port", f"{name}={port}")]
    try:
        yield (
            run_dir,
            _cli("up", "--run-dir", str(run_dir), "--artifacts", str(ARTIFACTS), "--timeout", "200", *port_args),
        )
    finally:
        _cli("down", "--run-dir", str(run_dir), timeout=60)
        shutil.rmtree(run_dir.parent, ignore_errors=True)


def test_up_reports_both_services_ready(stack_up: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, up = stack_up
    assert up.returncode == 0, up.stdout + up.stderr
    assert "TorchServe: ready" in up.stdout and "TF Serving stand-in: ready" in up.stdout
    assert "Gateway: ready" in up.stdout
    state = json.loads((run_dir / "state.json").read_text())
    assert state["tf_side"] == "standin"
    assert set(state["services"]) == {"torchserve", "torchserve-keys", "tfserving", "gateway"}


def test_printed_curl_commands_work(stack_up: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, up = stack_up
    commands = [line.strip() for line in up.stdout.splitlines() if line.strip().startswith("curl ")]
    predicts = [c for c in commands if "/predictions/" in c or ":predict" in c]
    assert len(predicts) == 2, up.stdout
    for command in predicts:
        done = subprocess.run(
            ["bash", "-c", command + " -s -f"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        assert len(json.loads(done.stdout)["predictions"]) >= 1


def test_printed_gateway_curl_commands_work(stack_up: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, up = stack_up
    commands = [line.strip() for line in up.stdout.splitlines() if "/v2/models/digits/infer" in line]
    assert len(commands) == 3, up.stdout  # one routed by policy, one pinned to each stack
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command + " -f -D /dev/stderr"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        answer = json.loads(done.stdout)
        assert answer["model_version"] == "1" and {o["name"] for o in answer["outputs"]} == {"logits", "probabilities"}
        for backend in ("torchserve", "tfserving"):
            if f"X-Backend: {backend}" in command:
                assert f"x-backend: {backend}" in done.stderr.lower()


def test_token_not_in_output(stack_up: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, up = stack_up
    token = read_token(run_dir / "torchserve" / "key_file.json")
    assert token not in up.stdout + up.stderr
    status = _cli("status", "--run-dir", str(run_dir))
    assert status.returncode == 0, status.stdout
    assert token not in status.stdout + status.stderr


def test_down_stops_everything(stack_up: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, _ = stack_up
    pids = [s["pid"] for s in json.loads((run_dir / "state.json").read_text())["services"].values()]
    groups = [p for p in psutil.process_iter() if _pgid(p.pid) in pids]
    down = _cli("down", "--run-dir", str(run_dir), timeout=60)
    assert down.returncode == 0, down.stdout
    assert re.search(r"TorchServe: (stopped|killed)", down.stdout)
    assert not (run_dir / "state.json").exists()
    assert not [p for p in groups if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
