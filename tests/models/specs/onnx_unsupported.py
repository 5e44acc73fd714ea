"""Test spec without build_keras(): a layer inverts a matrix (aten::linalg_inv), which ONNX cannot express."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["y"]


class Invert(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.inv(x.reshape(-1, 2, 2)).reshape(-1, 4)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.invert = Invert()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.invert(self.proj(x))


def build() -> nn.Module:
    torch.manual_seed(1)
    return Net().eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)}
