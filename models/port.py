"""Layout conversions of the weight port (models/portrules.py) and a file-format-independent weights digest.

PyTorch keeps conv kernels as (out, in, kh, kw) and dense weights as (out, in); Keras as (kh, kw, in, out) and
(in, out). A dense layer after a flatten also needs its rows permuted: PyTorch flattened (C, H, W), Keras an NHWC
map as (H, W, C).
"""

from __future__ import annotations

import hashlib

import numpy as np
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


def canonical_digest(torch_model: nn.Module) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes: independent of file formats."""
    digest = hashlib.sha256()
    for key, tensor in sorted(torch_model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{key}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
