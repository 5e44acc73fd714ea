"""The container stack as `make up STACK=compose` leaves it: these tests use it, they never start it.

`make test-containers` brings the stack up (`make engine`, `make up STACK=compose`), runs them, and takes it down.
Without a compose stack they skip, except with TWINSERVE_CONTAINER_TESTS=1 (CI), where they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "run" / "compose" / "state.json"


@dataclass(frozen=True)
class ComposeStack:
    """A running compose stack, seen from the host: published ports on `host`."""

    host: str
    tf_side: str
    files: tuple[str, ...]

    def url(self, port: int, path: str = "") -> str:
        """`http://host:port<path>`."""
        return f"http://{self.host}:{port}{path}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`docker compose -f ... <args>` in the repository, with the engine `make engine` remembered."""
        argv = ["docker", "compose", *[a for f in self.files for a in ("-f", f)], *args]
        return subprocess.run(argv, cwd=REPO, check=False, capture_output=True, text=True, timeout=timeout)

    def inspect(self, container: str) -> dict[str, Any]:
        """`docker inspect` of one container."""
        done = subprocess.run(["docker", "inspect", container], check=True, capture_output=True, text=True)
        return json.loads(done.stdout)[0]

    def container(self, service: str) -> str:
        """The container name of a service."""
        done = self.compose("ps", "-a", "--format", "{{.Name}}", service)
        names = done.stdout.split()
        assert names, f"no container for {service}: {done.stderr}"
        return names[0]

    def wait_ready(self, backend: str, model: str = "digits", timeout: float = 300) -> None:
        """Until the gateway reports `model` ready pinned to `backend`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = requests.get(self.url(8000, f"/v2/models/{model}/ready"), headers={"X-Backend": backend}, timeout=5)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        raise AssertionError(f"{model} not ready on {backend} through the gateway after {timeout} s")


def _engine_env() -> None:
    # `make engine` remembers its engine in .engine/env; make exports it, a bare pytest reads it here.
    env_file = REPO / ".engine" / "env"
    if "DOCKER_HOST" not in os.environ and env_file.is_file():
        for line in env_file.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, value = line.removeprefix("export ").split("=", 1)
                os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def compose_stack() -> ComposeStack:
    """The compose stack `make up STACK=compose` started (skips, or fails under CI, when there is none)."""
    _engine_env()
    problem = None
    if shutil.which("docker") is None:
        problem = "no docker command"
    elif not STATE.is_file():
        problem = f"{STATE.relative_to(REPO)} is missing: run `make engine && make up STACK=compose` first"
    if problem:
        if os.environ.get("TWINSERVE_CONTAINER_TESTS") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    state = json.loads(STATE.read_text(encoding="utf-8"))
    return ComposeStack(host=state["host"], tf_side=state["tf_side"], files=tuple(state["compose_files"]))
