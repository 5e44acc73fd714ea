"""Shared fixtures: where the artifacts are, and the guarantee they exist (make test builds them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The exported artifacts folder; `make test` runs `make export` first, so missing means broken."""
    path = REPO / "artifacts"
    if not (path / "manifest.json").exists():
        pytest.fail("artifacts/manifest.json is missing: run `make export` (make test does it for you)")
    return path


@dataclass(frozen=True)
class NativeStack:
    """A running native stack (real TorchServe + the TF Serving stand-in) on ephemeral ports."""

    stack: object
    ports: object
    run_dir: Path

    def token(self) -> str:
        """TorchServe's current inference key (re-read from its key file every call)."""
        return self.stack.token()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def native_stack(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """Start TorchServe and the TF Serving stand-in once for the whole session, stop them at the end."""
    from contract.ports import Ports
    from supervisor.stack import Stack

    run_dir = tmp_path_factory.mktemp("run")
    ports = Ports.ephemeral()
    stack = Stack(run_dir, artifacts, ports)
    try:
        stack.up(["torchserve", "tfserving"], timeout=240)
        yield NativeStack(stack, ports, run_dir)
    finally:
        stack.down()
