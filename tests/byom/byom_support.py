"""BYOM support: a root with the zoo's artifacts (linked) and two specs put through `make add-model`'s code
(`python -m models.addmodel --root <tmp> add`), and the whole native stack (TorchServe, the TF Serving stand-in,
the gateway) serving them, once per session.

  pairs  tests/byom/specs/pairs.py: FP32 + INT64 inputs, FP32 + INT64 outputs (the BYOM e2e model)
  mixed  tests/models/specs/dtypes.py: FP32, INT32, FP16 and BOOL inputs; FP32 and INT32 outputs
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import registry

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    "pairs": REPO / "tests" / "byom" / "specs" / "pairs.py",
    "mixed": REPO / "tests" / "models" / "specs" / "dtypes.py",
}
ZOO = ("digits", "resnet18")


@dataclass(frozen=True)
class Byom:
    """The running stack, the registrations and their torch reference arrays."""

    root: Path
    run_dir: Path
    ports: object
    stack: object
    models: dict[str, registry.RegisteredModel]
    references: dict[str, dict[str, np.ndarray]]

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


def add_model(root: Path, spec: Path, name: str) -> None:
    """What `make add-model SPEC=spec NAME=name` runs, into `root` instead of the checkout."""
    command = [sys.executable, "-m", "models.addmodel", "--root", str(root), "add", "--spec", str(spec), "--name", name]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
