"""Test spec: a tabular MLP with LayerNorm, GELU and softmax, and two outputs (class scores and a value)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["scores", "value"]
tolerance = {"atol": 1e-5, "rtol": 1e-4}
FEATURES = 12
APPROXIMATE_GELU = False  # mlp_wrong_keras.py sets True: tanh GELU, off by ~1e-3


class TabularMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, 32)
        self.norm = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 16)
        self.classes = nn.Linear(16, 3)
        self.regress = nn.Linear(16, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = nn.functional.gelu(self.norm(self.fc1(features)))
        h = nn.functional.gelu(self.fc2(h))
        return torch.softmax(self.classes(h), dim=-1), self.regress(h)


def build() -> nn.Module:
    torch.manual_seed(3)
    model = TabularMLP()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.uniform_(-0.3, 0.3)
    return model.eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    return {"features": np.random.default_rng(batch).normal(0, 2, (batch, FEATURES)).astype(np.float32)}


def build_keras():
    import keras
    from keras import layers

    features = keras.Input((FEATURES,), name="features")
    h = layers.LayerNormalization(epsilon=1e-5, name="norm")(layers.Dense(32, name="fc1")(features))
    h = keras.activations.gelu(h, approximate=APPROXIMATE_GELU)
    h = keras.activations.gelu(layers.Dense(16, name="fc2")(h), approximate=APPROXIMATE_GELU)
    scores = layers.Softmax(axis=-1)(layers.Dense(3, name="classes")(h))
    return keras.Model(features, [scores, layers.Dense(1, name="regress")(h)])
