"""Test spec `pairs`: two inputs (FP32 features, INT64 ids), two outputs (FP32 score, INT64 count of ids >= 5)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["score", "count"]
tolerance = {"atol": 1e-5, "rtol": 1e-4}
slo_p99_ms = 200
FEATURES, IDS, VOCAB, EMBED, CLASSES = 4, 3, 10, 6, 2


class Pairs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.dense = nn.Linear(FEATURES, CLASSES)
        self.project = nn.Linear(EMBED, CLASSES, bias=False)

    def forward(self, features: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = self.dense(features) + self.project(self.embedding(ids).mean(dim=1))
        return score, (ids >= 5).sum(dim=1, keepdim=True).to(torch.int64)


def architecture() -> nn.Module:
    return Pairs().eval()


def build() -> nn.Module:
    torch.manual_seed(13)
    return Pairs().eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {
        "features": rng.standard_normal((batch, FEATURES)).astype(np.float32),
        "ids": rng.integers(0, VOCAB, (batch, IDS)).astype(np.int64),
    }


def build_keras():
    import keras
    from keras import layers, ops

    features = keras.Input((FEATURES,), name="features")
    ids = keras.Input((IDS,), dtype="int64", name="ids")
    embedded = ops.mean(layers.Embedding(VOCAB, EMBED, name="embedding")(ids), axis=1)
    score = layers.Dense(CLASSES, name="dense")(features) + layers.Dense(CLASSES, use_bias=False, name="project")(
        embedded
    )
    count = ops.sum(ops.cast(ops.greater_equal(ids, 5), "int64"), axis=1, keepdims=True)
    return keras.Model([features, ids], [score, count])
