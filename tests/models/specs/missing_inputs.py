"""Test spec: forgets example_inputs()."""

from __future__ import annotations

from torch import nn

output_names = ["y"]


def build() -> nn.Module:
    return nn.Linear(2, 2).eval()
