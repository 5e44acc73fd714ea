"""Routes for the registered models (models/registry.py: artifacts/registry/*.json, models.d/*/model.json).

Each registered model is routed by name with its real signature, pinned to TorchServe, unless the routes file
names it (then the file's route replaces it). Reads JSON only: the registry reader imports no framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models import registry


def routes(root: Path) -> dict[str, dict[str, Any]]:
    """Route mappings (as in routes.yaml) for every model registered under `root`."""
    return {name: _route(model) for name, model in registry.load_all(root).items()}


def _route(model: registry.RegisteredModel) -> dict[str, Any]:
    def tensors(specs: tuple[registry.TensorSpec, ...]) -> list[dict[str, Any]]:
        return [t.to_json() for t in specs]

    return {
        "policy": "pin",
        "backend": "torchserve",
        "versions": [str(model.version)],
        "signature": {"inputs": tensors(model.inputs), "outputs": tensors(model.outputs)},
    }
