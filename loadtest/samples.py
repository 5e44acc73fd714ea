"""Reference inputs and outputs from `artifacts/samples/<model>.npz` (written by `make export`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARTIFACTS = Path("artifacts")


@dataclass(frozen=True)
class Reference:
    """Inputs [n, *input_shape] float32 and the exported torch model's logits [n, classes] for them."""

    model: str
    inputs: np.ndarray
    logits: np.ndarray


def load_reference(model: str, artifacts: Path = ARTIFACTS) -> Reference:
    """Load `<artifacts>/samples/<model>.npz`; a missing file names the command that writes it."""
    path = artifacts / "samples" / f"{model}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make export` first")
    with np.load(path) as z:
        inputs = np.ascontiguousarray(z["inputs"], dtype=np.float32)
        logits = np.ascontiguousarray(z["logits"], dtype=np.float32)
    if len(inputs) != len(logits) or len(inputs) == 0:
        raise ValueError(f"{path}: inputs and logits must be non-empty and the same length")
    return Reference(model, inputs, logits)
