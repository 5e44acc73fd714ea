"""Test spec: a conv net with a depthwise conv, batch norm, pooling and a residual connection; NCHW float32.

No build_keras(): the TF side comes from the ONNX converter (onnx2tf in .venv-convert).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["logits"]
parity_batch = 4


class ConvNet(nn.Module):
    """3x16x16 image -> 5 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn0(self.stem(image)))
        y = self.pointwise(torch.relu(self.bn1(self.depthwise(x))))
        x = self.pool(torch.relu(x + y))  # residual
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build() -> nn.Module:
    torch.manual_seed(7)
    model = ConvNet()
    with torch.no_grad():  # non-trivial BN statistics so that folding them wrongly shows
        for bn in (model.bn0, model.bn1):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)}
