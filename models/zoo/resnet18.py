"""ResNet-18 (He et al., 2015) for 3x224x224 inputs with seeded random weights: the compute-bound workload.

A built-in spec (issue 13): exported by `make export` through `make add-model`'s path. Nothing is downloaded:
weights are torch's default init under a fixed seed, batch-norm affine parameters are drawn from the seed and
their statistics calibrated on seeded images, so activations and logits have a sane, non-trivial scale.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

description = "ResNet-18 with seeded random weights (compute-bound workload)"
output_names = ["logits", "probabilities"]
max_batch = 32
slo_p99_ms = 1500.0  # loadtest/run.py's default SLO for resnet18
tolerance = {"atol": 1e-4, "rtol": 1e-3}

SEED = 20261122
CLASSES = 1000
CALIBRATION_BATCHES = 4
SAMPLES = 16  # load-test payloads; parity draws its own seeded images
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity or 1x1 projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + shortcut)


class ResNet18(nn.Module):
    """ResNet-18; answers logits and their softmax."""

    def __init__(self, num_classes: int = CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, stride=1)
        self.layer2 = _stage(64, 128, stride=2)
        self.layer3 = _stage(128, 256, stride=2)
        self.layer4 = _stage(256, 512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # `input`: the registered name
        x = self.maxpool(torch.relu(self.bn1(self.conv1(input))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits = self.fc(torch.flatten(self.avgpool(x), 1))
        return logits, torch.softmax(logits, dim=1)


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels, 1))


def architecture() -> nn.Module:
    """The module TorchServe rebuilds before loading the exported weights."""
    return ResNet18().eval()


def seeded_images(count: int, seed: int) -> np.ndarray:
    """`count` random 8-bit RGB images, normalised like ImageNet inputs, as float32 NCHW."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(count, 3, 224, 224), dtype=np.uint8)
    return ((pixels.astype(np.float32) / 255.0) - IMAGENET_MEAN) / IMAGENET_STD


# Cached: `make export` needs the seeded module twice (add-model's export, then the manifest's facts and the
# samples), and calibrating batch norm on 32 images costs seconds; one build keeps every artifact identical.
@functools.cache
def build() -> nn.Module:
    """ResNet-18 with seeded weights, BN affine parameters drawn from the seed, BN statistics calibrated."""
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reduction order must not depend on the core count
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(SEED)
    model = ResNet18()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.momentum = None  # cumulative average over the calibration batches
        model.train()
        for index in range(CALIBRATION_BATCHES):
            model(torch.from_numpy(seeded_images(8, SEED + index)))
    return model.eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    """Seeded images (the first `batch` of the load-test samples)."""
    return {"input": seeded_images(batch, 7)}


def samples() -> tuple[np.ndarray, np.ndarray | None]:
    """Load-test payloads (artifacts/samples/resnet18.npz): seeded images, no labels."""
    return seeded_images(SAMPLES, 7), None


def facts(model: nn.Module) -> dict[str, object]:
    """Facts for artifacts/manifest.json."""
    return {"weights": "seeded random, BN calibrated", "seed": SEED}


def build_keras():  # keras is imported lazily: TorchServe imports this file without it
    """ResNet-18 in Keras 3 on NCHW input; layer names are the torch module paths ('.' -> '_').

    Padding is explicit (ZeroPadding2D + 'valid'): TensorFlow's 'same' pads stride-2 convolutions asymmetrically,
    unlike torch's symmetric padding.
    """
    import keras
    from keras import layers

    def conv_bn(x, name: str, filters: int, kernel: int, stride: int, pad: int):
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)
        return layers.BatchNormalization(epsilon=1e-5, name=name.replace("conv", "bn"))(x)

    def block(x, name: str, filters: int, stride: int, project: bool):
        shortcut = x
        if project:
            shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_downsample_0")(x)
            shortcut = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_downsample_1")(shortcut)
        y = layers.ReLU()(conv_bn(x, f"{name}_conv1", filters, 3, stride, 1))
        y = conv_bn(y, f"{name}_conv2", filters, 3, 1, 1)
        return layers.ReLU()(layers.Add(name=f"{name}_add")([y, shortcut]))

    inputs = keras.Input((3, 224, 224), name="input")
    x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)
    x = layers.ReLU()(conv_bn(x, "conv1", 64, 7, 2, 3))
    # torch pads max-pool with -inf; inputs here are post-ReLU (>= 0), so zero padding is equivalent.
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(layers.ZeroPadding2D(1, name="maxpool_pad")(x))
    in_filters = 64
    for index, (filters, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
        x = block(x, f"layer{index}_0", filters, stride, stride != 1 or in_filters != filters)
        x = block(x, f"layer{index}_1", filters, 1, False)
        in_filters = filters
    logits = layers.Dense(CLASSES, name="fc")(layers.GlobalAveragePooling2D(name="avgpool")(x))
    return keras.Model(inputs, [logits, layers.Softmax(axis=-1, name="softmax")(logits)], name="resnet18")
