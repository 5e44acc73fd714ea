"""`make gpu-check` runs in its own venv with a CUDA torch, made only on a machine with an NVIDIA GPU; without
one it exits 2 and makes nothing. scripts/gpu-check.sh runs against a fake nvidia-smi and a fake Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import REPO

FAKE_SMI = """#!/bin/sh
[ "$1" = -L ] && [ -n "$FAKE_GPU" ] && echo "GPU 0: NVIDIA H200 (UUID: GPU-fake)"
exit 0
"""
# Stands in for python3 and, once `-m venv DIR` ran, for DIR/bin/python; `-c` is the CUDA-build check.
FAKE_PY = """#!/bin/sh
echo "py $*" >> "$FAKE_LOG"
if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
if [ "$1" = -c ]; then exit "${FAKE_CUDA_RC:-0}"; fi
exit 0
"""


def run(tmp_path: Path, smi: bool = True, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    """Run scripts/gpu-check.sh with the fakes; returns the result, the recorded Python calls and the venv path."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "python").write_text(FAKE_PY)
    (bindir / "python").chmod(0o755)
    if smi:
        (bindir / "nvidia-smi").write_text(FAKE_SMI)
        (bindir / "nvidia-smi").chmod(0o755)
    log = tmp_path / "calls"
    log.touch()
    venv = tmp_path / "venv-gpu"
    full = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "PYTHON": str(bindir / "python"),
        "GPU_VENV": str(venv),
        "NVIDIA_SMI": str(bindir / "nvidia-smi") if smi else "no-such-nvidia-smi",
        **env,
    }
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu-check.sh")],
        check=False,
        capture_output=True,
        text=True,
        env=full,
        timeout=30,
    )
    return done, log.read_text().splitlines(), venv


def test_no_nvidia_smi_exits_2_and_makes_nothing(tmp_path: Path) -> None:
    done, calls, venv = run(tmp_path, smi=False)
    assert done.returncode == 2, done.stderr
    assert "no NVIDIA GPU here" in done.stderr and "nothing to do" in done.stderr
    assert calls == [] and not venv.exists()


def test_nvidia_smi_without_a_gpu_exits_2_and_makes_nothing(tmp_path: Path) -> None:
    done, calls, venv = run(tmp_path)  # the fake lists no GPU unless FAKE_GPU is set
    assert done.returncode == 2 and "lists none" in done.stderr
    assert calls == [] and not venv.exists()


def test_on_a_gpu_machine_it_makes_its_own_cuda_venv_once_and_runs_the_check(tmp_path: Path) -> None:
    done, calls, venv = run(tmp_path, FAKE_GPU="1", ARTIFACTS="arts")
    assert done.returncode == 0, done.stderr
    assert calls[0] == f"py -m venv {venv}"
    (install,) = [c for c in calls if " pip install " in c]
    assert "--index-url https://download.pytorch.org/whl/cu128" in install and "-r requirements/gpu.txt" in install
    assert calls[-1] == "py scripts/gpu_check.py --artifacts arts --out docs/gpu.md"
    again, calls_again, _ = run(tmp_path, FAKE_GPU="1", ARTIFACTS="arts")
    assert again.returncode == 0 and not any("pip install" in c for c in calls_again[len(calls) :])


def test_a_cpu_torch_in_the_gpu_venv_is_an_error(tmp_path: Path) -> None:
    done, calls, venv = run(tmp_path, FAKE_GPU="1", FAKE_CUDA_RC="1")
    assert done.returncode == 1 and "not a CUDA build" in done.stderr
    assert not any("gpu_check.py" in c for c in calls)
    assert not list(venv.glob(".installed-*"))  # the next run tries again


def test_gpu_requirements_pin_the_main_venvs_torch_numpy_and_torchserve() -> None:
    gpu = {
        line.split("==")[0]: line.split("==")[1] for line in (REPO / "requirements/gpu.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }  # fmt: skip
    constraints = (REPO / "requirements/constraints.txt").read_text()
    assert f"torch=={gpu['torch']}+cpu" in constraints  # the same release, CUDA build instead of CPU
    assert f"numpy=={gpu['numpy']}" in constraints
    # The check loads each .mar through its own handler, which imports ts.utils.util as inside TorchServe.
    assert f"torchserve=={gpu['torchserve']}" in constraints


def test_the_check_itself_exits_2_on_a_torch_without_cuda() -> None:
    """The main venv's CPU torch: what a machine whose driver does not answer would see too."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--artifacts", str(REPO / "artifacts")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 2 and "no CUDA device" in done.stderr, done.stderr[-1000:]


def test_make_gpu_check_uses_the_script_not_the_cpu_venv() -> None:
    plan = subprocess.run(
        ["make", "-n", "gpu-check"], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "bash scripts/gpu-check.sh" in plan.stdout, plan.stdout + plan.stderr
    assert ".venv/bin/python scripts/gpu_check.py" not in plan.stdout
