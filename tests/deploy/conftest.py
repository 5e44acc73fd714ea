"""Fixtures for the deployment tests: the merged compose models (from a real Compose v2), parsed Dockerfiles.

No Docker engine is needed: `docker compose config` only parses, merges, interpolates and validates. The
implementation is the pinned docker compose binary that `make lint` (scripts/check-compose.sh) puts in the venv's
bin folder or, failing that, a `docker compose` v2 plugin. Without either the compose tests skip, except under
CI, where `make lint` has run first, so they fail instead.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy.k8s.storage import lay_out
from tests.deploy.checks import Instruction, parse_dockerfile
from tests.deploy.kserve_torchserve import KServeTorchServe, kserve_torchserve

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "torchserve": REPO / "serving/torchserve/Dockerfile",
    "tfserving": REPO / "serving/tfserving/Dockerfile",
    "tfserving-standin": REPO / "serving/tfserving/standin/Dockerfile",
    "gateway": REPO / "gateway/Dockerfile",
    "loadtest": REPO / "loadtest/Dockerfile",
}
DEFAULT = ("docker-compose.yml",)
CPU = ("docker-compose.yml", "docker-compose.cpu.yml")
STANDIN = ("docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.standin.yml")


@cache
def compose_command() -> tuple[str, ...] | None:
    """argv prefix of a Compose v2 implementation, or None."""
    pinned = sorted(Path(sys.executable).parent.glob("docker-compose-v2.*"))  # put there by scripts/check-compose.sh
    if pinned:
        return (str(pinned[-1]),)
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version", "--short"], check=False, capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip().startswith("2."):
            return (docker, "compose")
    return None


def run_compose(files: tuple[str, ...], profiles: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Any:
    """`docker compose -f ... [--profile ...] config --format json` in a clean environment (+ `env`), parsed."""
    command = compose_command()
    if command is None:
        message = "no Compose v2 implementation: `make lint` fetches docker compose v2.40.3 into the venv"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    argv = [*command]
    for f in files:
        argv += ["-f", str(REPO / f)]
    for p in profiles:
        argv += ["--profile", p]
    argv += ["config", "--format", "json"]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    done = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=REPO, env=clean, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stderr}"
    return json.loads(done.stdout)


@cache
def _cached(files: tuple[str, ...], profiles: tuple[str, ...]) -> Any:
    return run_compose(files, profiles)


@pytest.fixture(scope="session")
def compose() -> Callable[..., Any]:
    """compose(files, profiles=(), env=None) -> a fresh copy of the merged model (tests may mutate it)."""

    def get(files: tuple[str, ...] = DEFAULT, profiles: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Any:
        if env:
            return run_compose(files, profiles, env)
        return copy.deepcopy(_cached(files, profiles))

    return get


@pytest.fixture
def default_cfg(compose: Callable[..., Any]) -> Any:
    """docker-compose.yml with the observe profile: every service (a fresh copy per test)."""
    return compose(DEFAULT, ("observe",))


@pytest.fixture
def cpu_cfg(compose: Callable[..., Any]) -> Any:
    """docker-compose.yml + docker-compose.cpu.yml with the observe profile (a fresh copy per test)."""
    return compose(CPU, ("observe",))


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, list[Instruction]]:
    """Image name -> parsed Dockerfile."""
    return {name: parse_dockerfile(path.read_text()) for name, path in DOCKERFILES.items()}


# ---- TorchServe as KServe's kserve-torchserve runtime runs it (tests/deploy/kserve_torchserve.py) ----


@pytest.fixture(scope="session")
def kserve_storage(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make k8s-artifacts`'s layout of the exported artifacts (the storageUri contents)."""
    out = tmp_path_factory.mktemp("k8s-storage")
    lay_out(artifacts, out, progress=lambda _: None)
    return out


@pytest.fixture(scope="session")
def ts_v1(kserve_storage: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeTorchServe]:
    """digits on TorchServe with KServe's v1 envelope (protocolVersion v1, what the renderer sets)."""
    with kserve_torchserve(kserve_storage, "digits", "kserve", tmp_path_factory.mktemp("ts-kserve")) as ts:
        yield ts


@pytest.fixture(scope="session")
def ts_v2(kserve_storage: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeTorchServe]:
    """digits on TorchServe with KServe's v2 envelope (protocolVersion v2)."""
    with kserve_torchserve(kserve_storage, "digits", "kservev2", tmp_path_factory.mktemp("ts-kservev2")) as ts:
        yield ts


@pytest.fixture(scope="session")
def digits(artifacts: Path) -> dict[str, np.ndarray]:
    """Reference inputs and the exporter's torch outputs."""
    data = np.load(artifacts / "samples" / "digits.npz")
    return {k: data[k] for k in data.files}
