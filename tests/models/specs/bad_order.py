"""Test spec: example_inputs lists the mask before the ids, but forward takes (input_ids, attention_mask)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

output_names = ["logits"]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return (self.emb(input_ids) * attention_mask.unsqueeze(-1)).sum(1)


def build() -> nn.Module:
    return Net().eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    return {"attention_mask": np.ones((batch, 5), np.int64), "input_ids": np.ones((batch, 5), np.int64)}
