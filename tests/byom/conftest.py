"""BYOM fixtures: a root with the zoo's artifacts (linked) and the `pairs` test model exported and registered,
and the whole native stack (TorchServe, the TF Serving stand-in, the gateway) serving it, once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixture_model

REPO = Path(__file__).resolve().parents[2]
ZOO = ("digits", "resnet18")


@dataclass(frozen=True)
class Byom:
    """The running stack and where the registered test model lives."""

    root: Path
    run_dir: Path
    ports: object
    stack: object
    reference: dict[str, np.ndarray]

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.ports.gateway_rest}"  # type: ignore[attr-defined]

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.gateway_grpc}"  # type: ignore[attr-defined]

    def token(self) -> str:
        """TorchServe's current inference key."""
        return self.stack.token()  # type: ignore[attr-defined]


def link_zoo(artifacts: Path, root: Path) -> None:
    """The zoo's exported artifacts, linked into `root`/artifacts (models.config lists them)."""
    for model in ZOO:
        for rel in (f"torchserve/{model}.mar", f"tfserving/{model}", f"samples/{model}.json", f"samples/{model}.npz"):
            target = root / "artifacts" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(artifacts / rel)


@pytest.fixture(scope="session")
def byom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Byom]:
    """Export and register `pairs` under a fresh root, start every service on ephemeral ports, stop at the end."""
    artifacts = REPO / "artifacts"
    if not (artifacts / "manifest.json").exists():
        pytest.fail("artifacts/manifest.json is missing: run `make export` (make test does it for you)")
    from contract.ports import Ports
    from supervisor.stack import Stack

    root = tmp_path_factory.mktemp("byom")
    fixture_model.build(root)
    link_zoo(artifacts, root)
    with np.load(root / "artifacts" / "reference" / f"{fixture_model.NAME}.npz") as data:
        reference = {k: data[k] for k in data.files}
    run_dir, ports = root / "run", Ports.ephemeral()
    stack = Stack(run_dir, root / "artifacts", ports)
    try:
        stack.up(timeout=300)
        yield Byom(root, run_dir, ports, stack, reference)
    finally:
        stack.down()
