"""Deterministic weights for every model: digits is trained, resnet18 is seeded and BN-calibrated.

Determinism: one seed, one CPU thread, deterministic algorithms. The same machine and software
reproduce the same weights bit for bit (the manifest's weights_sha256 is checked by a test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from models import torch_nets
from models.specs import get_spec

SEED = 20261122
Progress = Callable[[str, float], None]
"""Callback (description, fraction done in [0, 1])."""


@dataclass(frozen=True)
class DigitsData:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], NCHW float32, stratified 80/20 split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_data() -> DigitsData:
    """Load the digits shipped inside scikit-learn (nothing is downloaded)."""
    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return DigitsData(x_train, y_train, x_test, y_test)


def _deterministic(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # reduction order must not depend on the core count
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def train_digits(seed: int = SEED, epochs: int = 40, progress: Progress | None = None) -> tuple[nn.Module, float]:
    """Train DigitsCNN; return the model (eval mode) and its held-out accuracy."""
    generator = _deterministic(seed)
    data = digits_data()
    model = torch_nets.build("digits", get_spec("digits").num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
        if progress:
            progress(f"digits: epoch {epoch + 1}/{epochs}", (epoch + 1) / epochs)
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.x_test)).argmax(1).numpy()
    return model, float((predicted == data.y_test).mean())


def seed_resnet18(seed: int = SEED, calibration_batches: int = 4, progress: Progress | None = None) -> nn.Module:
    """ResNet-18 with seeded random weights and batch-norm statistics calibrated on seeded images.

    Default BN statistics (mean 0, var 1) let activations grow block after block; calibrating them on
    data gives realistic, non-trivial statistics to port and logits of a sane scale.
    """
    generator = _deterministic(seed)
    model = torch_nets.build("resnet18", get_spec("resnet18").num_classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.momentum = None  # cumulative average over the calibration batches
        model.train()
        for index in range(calibration_batches):
            model(seeded_images(8, seed + index))
            if progress:
                progress("resnet18: calibrating batch norm", (index + 1) / calibration_batches)
    model.eval()
    return model


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def seeded_images(count: int, seed: int) -> torch.Tensor:
    """`count` random 8-bit RGB images, normalised like ImageNet inputs, as float32 NCHW."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(count, 3, 224, 224), dtype=np.uint8)
    return torch.from_numpy(((pixels.astype(np.float32) / 255.0) - IMAGENET_MEAN) / IMAGENET_STD)
