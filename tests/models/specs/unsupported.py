"""Test spec: a GRU layer, which the Keras weight port has no rule for: the error must name the op and the layer."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["y"]


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 8)
        self.rnn = nn.GRU(8, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.proj(x))
        return out[:, -1]


def build() -> nn.Module:
    torch.manual_seed(0)
    return Recurrent().eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.zeros((batch, 5, 3), np.float32)}


def build_keras():
    import keras
    from keras import layers

    x = keras.Input((5, 3), name="x")
    return keras.Model(x, layers.GRU(8, name="rnn")(layers.Dense(8, name="proj")(x)))
