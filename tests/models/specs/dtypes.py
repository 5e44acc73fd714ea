"""Test spec: several inputs with FP32, INT32, FP16 and BOOL dtypes; outputs FP32 and INT32."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["y", "total"]


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, counts: torch.Tensor, scale: torch.Tensor, keep: torch.Tensor):
        z = (x + counts.float() * scale.float()) * keep.float()
        total = (counts * keep.int()).sum(dim=1, keepdim=True).to(torch.int32)  # sum promotes to int64
        return self.fc(z), total


def build() -> nn.Module:
    torch.manual_seed(5)
    return Mixed().eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {
        "x": rng.standard_normal((batch, 4)).astype(np.float32),
        "counts": rng.integers(0, 10, (batch, 4)).astype(np.int32),
        "scale": rng.uniform(0, 1, (batch, 4)).astype(np.float16),
        "keep": rng.integers(0, 2, (batch, 4)).astype(bool),
    }


def build_keras():
    import keras
    from keras import layers, ops

    x = keras.Input((4,), name="x")
    counts = keras.Input((4,), dtype="int32", name="counts")
    scale = keras.Input((4,), dtype="float16", name="scale")
    keep = keras.Input((4,), dtype="bool", name="keep")
    z = (x + ops.cast(counts, "float32") * ops.cast(scale, "float32")) * ops.cast(keep, "float32")
    total = ops.sum(counts * ops.cast(keep, "int32"), axis=1, keepdims=True)
    return keras.Model([x, counts, scale, keep], [layers.Dense(3, name="fc")(z), total])
