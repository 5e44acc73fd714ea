"""Rebuild a spec's torch model from an unpacked .mar: packed as `twinserve_model.py` beside the handler.

A .mar made by `make add-model` holds: spec.py (the user's spec file, verbatim), weights.pt (the state_dict,
loadable with weights_only=True by torch 2.4 in the TorchServe image), signature.json (inputs and outputs as
registered) and this file. It imports nothing but torch, numpy and the standard library, so that the
TorchServe worker (and the parity check, which reads the .mar back from disk) can use it as is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any

import numpy as np
import torch

SIGNATURE = "signature.json"
SPEC = "spec.py"
WEIGHTS = "weights.pt"


def read_signature(model_dir: str) -> dict[str, Any]:
    """signature.json: {"name", "version", "inputs": [{name, datatype, shape}], "outputs": [...], "max_batch"}."""
    with open(os.path.join(model_dir, SIGNATURE), encoding="utf-8") as handle:
        return json.load(handle)


def load(model_dir: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Import spec.py, build the module with architecture() (else build()), load weights.pt strictly, eval."""
    path = os.path.join(model_dir, SPEC)
    name = f"twinserve_mar_spec_{abs(hash(os.path.abspath(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    factory = getattr(module, "architecture", None) or module.build
    model = factory()
    state = torch.load(os.path.join(model_dir, WEIGHTS), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def forward(model: torch.nn.Module, inputs: dict[str, np.ndarray], signature: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run one batch: inputs by name (passed positionally in the signature's order), outputs by name."""
    device = next(model.parameters()).device
    args = [torch.from_numpy(np.ascontiguousarray(inputs[t["name"]])).to(device) for t in signature["inputs"]]
    with torch.inference_mode():
        result = model(*args)
    tensors = result if isinstance(result, (tuple, list)) else (result,)
    return {t["name"]: x.detach().cpu().numpy() for t, x in zip(signature["outputs"], tensors, strict=True)}
