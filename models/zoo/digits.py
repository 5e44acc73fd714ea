"""Small CNN for 8x8 grey digits, trained deterministically on scikit-learn's bundled digits (nothing downloaded).

A built-in spec (issue 13): exported by `make export` through `make add-model`'s path. build() trains; the
.mar rebuilds the untrained architecture() and loads the trained state_dict, so TorchServe never trains.
Determinism: one seed, one CPU thread, deterministic algorithms; the same machine and software reproduce the
same weights bit for bit (the manifest's weights_sha256 is checked by tests/models/test_export.py).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

description = "small CNN trained on scikit-learn's bundled 8x8 digits"
output_names = ["logits", "probabilities"]
max_batch = 32
slo_p99_ms = 100.0  # loadtest/run.py's default SLO for digits
tolerance = {"atol": 1e-4, "rtol": 1e-3}
# fc1 follows a flatten: torch flattened (C, H, W), the Keras twin an NHWC map as (H, W, C).
keras_port_hints = {"fc1": {"flatten_chw": [64, 4, 4]}}

SEED = 20261122
EPOCHS = 40
CLASSES = 10


class DigitsCNN(nn.Module):
    """Two conv-BN-ReLU blocks, a 2x2 max-pool, two dense layers; answers logits and their softmax."""

    def __init__(self, num_classes: int = CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.dropout = nn.Dropout(0.25)
        self.fc2 = nn.Linear(128, num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # `input`: the registered name
        logits = self.logits(input)
        return logits, torch.softmax(logits, dim=1)


def architecture() -> nn.Module:
    """The untrained module TorchServe rebuilds before loading the exported weights."""
    return DigitsCNN().eval()


@functools.cache
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): scaled to [0, 1], NCHW float32, stratified 80/20 split."""
    from sklearn.datasets import load_digits  # lazily: TorchServe imports this file without scikit-learn
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, y_train, x_test, y_test


# Cached: training takes seconds and `make export` needs the trained module twice (add-model's export, then
# the manifest's facts and the samples); one training also keeps every artifact from the same weights.
@functools.cache
def build() -> nn.Module:
    """DigitsCNN trained with Adam and a cosine schedule, in eval mode."""
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reduction order must not depend on the core count
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(SEED)
    x_train, y_train, _, _ = (torch.from_numpy(a) for a in data())
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model.logits(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    """The first `batch` held-out digits (parity, reference and TF Serving's warm-up)."""
    x_test = data()[2]
    return {"input": np.ascontiguousarray(np.resize(x_test, (batch, 1, 8, 8)))}


def samples() -> tuple[np.ndarray, np.ndarray | None]:
    """Load-test payloads (artifacts/samples/digits.npz): the whole held-out set and its labels."""
    _, _, x_test, y_test = data()
    return x_test, y_test


def facts(model: nn.Module) -> dict[str, object]:
    """Facts for artifacts/manifest.json: the held-out accuracy of the trained model."""
    _, _, x_test, y_test = data()
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test))[0].argmax(1).numpy()
    return {"heldout_accuracy": float((predicted == y_test).mean()), "heldout_samples": len(y_test), "seed": SEED}


def build_keras():  # keras is imported lazily: TorchServe imports this file without it
    """DigitsCNN in Keras 3 on NCHW input; layer names are the torch module paths ('.' -> '_')."""
    import keras
    from keras import layers

    inputs = keras.Input((1, 8, 8), name="input")
    x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)
    for name, filters in (("1", 32), ("2", 64)):
        x = layers.ZeroPadding2D(1, name=f"conv{name}_pad")(x)  # explicit: like torch's symmetric padding
        x = layers.Conv2D(filters, 3, padding="valid", use_bias=False, name=f"conv{name}")(x)
        x = layers.ReLU()(layers.BatchNormalization(epsilon=1e-5, name=f"bn{name}")(x))
    x = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool")(x))
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    logits = layers.Dense(CLASSES, name="fc2")(x)
    return keras.Model(inputs, [logits, layers.Softmax(axis=-1, name="softmax")(logits)], name="digits")
