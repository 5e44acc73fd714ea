"""Explicit weight port from a PyTorch model to its Keras mirror (models/keras_nets.py).

Every PyTorch parameter and buffer must land in exactly one Keras weight, and every Keras weight
must be filled: a port that silently skips a layer would still "run", so both sides are checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import keras
import numpy as np
import torch
from torch import nn


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch conv weight (out, in, kh, kw) -> Keras Conv2D kernel (kh, kw, in, out)."""
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))


def dense_kernel(weight: np.ndarray, chw: tuple[int, int, int] | None = None) -> np.ndarray:
    """PyTorch Linear weight (out, in) -> Keras Dense kernel (in, out).

    With `chw`, the layer follows a flatten: PyTorch flattened (C, H, W) while Keras flattened an
    NHWC tensor as (H, W, C), so the input rows are permuted to Keras's order.
    """
    if chw is not None:
        channels, height, width = chw
        out = weight.shape[0]
        weight = weight.reshape(out, channels, height, width).transpose(0, 2, 3, 1).reshape(out, -1)
    return np.ascontiguousarray(weight.T)


def batch_norm(state: Mapping[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """PyTorch BatchNorm2d (weight, bias, running stats) -> Keras [gamma, beta, moving_mean, moving_var]."""
    return [state[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")]


# Layers whose input is a flattened conv feature map, with that map's (C, H, W).
FLATTENED_INPUTS: dict[str, dict[str, tuple[int, int, int]]] = {"digits": {"fc1": (64, 4, 4)}}


def port_weights(name: str, torch_model: nn.Module, keras_model: keras.Model) -> None:
    """Copy every weight of `torch_model` into `keras_model` (in place), checking full coverage."""
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    used: set[str] = set()
    modules = dict(torch_model.named_modules())
    flattened = FLATTENED_INPUTS.get(name, {})
    for layer in keras_model.layers:
        if not layer.weights:
            continue
        path = _torch_path(layer.name, modules)
        module = modules[path]
        if isinstance(module, nn.Conv2d):
            values = [conv_kernel(state[f"{path}.weight"])]
            used.add(f"{path}.weight")
            if module.bias is not None:
                values.append(state[f"{path}.bias"])
                used.add(f"{path}.bias")
        elif isinstance(module, nn.BatchNorm2d):
            if not np.isclose(module.eps, layer.epsilon):
                raise ValueError(f"{path}: BN epsilon differs ({module.eps} vs {layer.epsilon})")
            values = batch_norm(state, path)
            used.update(f"{path}.{k}" for k in ("weight", "bias", "running_mean", "running_var"))
            used.add(f"{path}.num_batches_tracked")  # training-only counter, no inference meaning
        elif isinstance(module, nn.Linear):
            values = [dense_kernel(state[f"{path}.weight"], flattened.get(path)), state[f"{path}.bias"]]
            used.update((f"{path}.weight", f"{path}.bias"))
        else:
            raise TypeError(f"no port rule for {type(module).__name__} at {path}")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [v.shape for v in values]
        if expected != got:
            raise ValueError(f"{path}: Keras expects shapes {expected}, port produced {got}")
        layer.set_weights(values)
    missing = sorted(set(state) - used)
    if missing:
        raise ValueError(f"PyTorch tensors not ported: {missing}")


def _torch_path(keras_name: str, modules: Mapping[str, nn.Module]) -> str:
    """Map a Keras layer name (module path with '_' for '.') back to the PyTorch module path."""
    candidates = [path for path in modules if path and path.replace(".", "_") == keras_name]
    if len(candidates) != 1:
        raise KeyError(f"Keras layer {keras_name!r} matches {len(candidates)} PyTorch modules")
    return candidates[0]


def canonical_digest(torch_model: nn.Module) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes: independent of file formats."""
    digest = hashlib.sha256()
    for key, tensor in sorted(torch_model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{key}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """Detach to a float32 numpy array."""
    return x.detach().cpu().numpy().astype(np.float32)
