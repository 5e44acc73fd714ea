"""E2E fixtures: the real native stacks (TorchServe + TF Serving stand-in) once per session.

Skipped only when artifacts or the supervisor are missing; a stack that fails to start fails the tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from e2e_support import ARTIFACTS, Stacks  # noqa: E402


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """Start TorchServe and the TF Serving stand-in once for the session."""
    if not (ARTIFACTS / "manifest.json").exists():
        pytest.skip("artifacts/manifest.json missing: run `make export` first")
    supervisor = pytest.importorskip("supervisor.stack")
    from contract.ports import Ports

    run_dir = tmp_path_factory.mktemp("run")
    ports = Ports.ephemeral()
    stack = supervisor.Stack(run_dir, ARTIFACTS, ports)
    try:
        stack.up(["torchserve", "tfserving"], timeout=240)
        yield Stacks(stack, ports, run_dir)
    finally:
        stack.down()


@pytest.fixture(scope="session")
def samples() -> dict[str, np.ndarray]:
    """Reference inputs and torch outputs for digits."""
    data = np.load(ARTIFACTS / "samples" / "digits.npz")
    return {k: data[k] for k in data.files}
