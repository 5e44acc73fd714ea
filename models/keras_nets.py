"""Keras 3 mirrors of models/torch_nets.py, taking NCHW input exactly like the PyTorch models.

Layer names are the PyTorch module paths with '.' replaced by '_', which is what models/port.py
relies on. Padding is always explicit (ZeroPadding2D + 'valid') because TensorFlow's 'same'
pads stride-2 convolutions asymmetrically, unlike PyTorch's symmetric padding.
"""

from __future__ import annotations

import keras
from keras import layers

BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d default; Keras defaults to 1e-3


def _conv_bn(x: keras.KerasTensor, name: str, filters: int, kernel: int, stride: int, pad: int):
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name.replace("conv", "bn"))(x)


def digits(num_classes: int = 10) -> keras.Model:
    """DigitsCNN in Keras."""
    inputs = keras.Input((1, 8, 8), name="input")
    x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)
    x = layers.ReLU()(_conv_bn(x, "conv1", 32, 3, 1, 1))
    x = layers.ReLU()(_conv_bn(x, "conv2", 64, 3, 1, 1))
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)  # (H, W, C) order
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, name="fc2")(x)
    return keras.Model(inputs, outputs, name="digits")


def _basic_block(x: keras.KerasTensor, name: str, filters: int, stride: int, project: bool):
    shortcut = x
    if project:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_downsample_0")(x)
        shortcut = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_downsample_1")(shortcut)
    y = layers.ReLU()(_conv_bn(x, f"{name}_conv1", filters, 3, stride, 1))
    y = _conv_bn(y, f"{name}_conv2", filters, 3, 1, 1)
    return layers.ReLU()(layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet18(num_classes: int = 1000) -> keras.Model:
    """ResNet18 in Keras."""
    inputs = keras.Input((3, 224, 224), name="input")
    x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)
    x = layers.ReLU()(_conv_bn(x, "conv1", 64, 7, 2, 3))
    # PyTorch pads max-pool with -inf; inputs here are post-ReLU (>= 0), so zero padding is equivalent.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    in_filters = 64
    for index, (filters, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
        project = stride != 1 or in_filters != filters
        x = _basic_block(x, f"layer{index}_0", filters, stride, project)
        x = _basic_block(x, f"layer{index}_1", filters, 1, False)
        in_filters = filters
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="resnet18")


ARCHITECTURES = {"digits": digits, "resnet18": resnet18}


def build(name: str, num_classes: int) -> keras.Model:
    """Instantiate the Keras architecture registered under `name`."""
    return ARCHITECTURES[name](num_classes=num_classes)
