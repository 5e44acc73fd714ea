"""The weight port, layer type by layer type: each rule is checked against PyTorch's own output; then the zoo's
conv nets (models/zoo/digits.py, resnet18.py) whole, through the port by rules every spec with build_keras() uses."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from keras import layers
from torch import nn

from models import modelspec, port, portrules

REPO = Path(__file__).resolve().parents[2]

RNG = np.random.default_rng(0)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1)


def run_torch(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def test_conv_kernel_layout_matches_pytorch_convolution() -> None:
    conv = nn.Conv2d(3, 5, kernel_size=(3, 2), bias=True)
    x = RNG.standard_normal((2, 3, 7, 6)).astype(np.float32)
    layer = layers.Conv2D(5, (3, 2), padding="valid")
    layer.build((None, 7, 6, 3))
    layer.set_weights([port.conv_kernel(conv.weight.detach().numpy()), conv.bias.detach().numpy()])
    np.testing.assert_allclose(nchw_to_nhwc(run_torch(conv, x)), layer(nchw_to_nhwc(x)).numpy(), atol=1e-5)


def test_stride2_padding_needs_explicit_symmetric_padding() -> None:
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
    x = RNG.standard_normal((1, 2, 8, 8)).astype(np.float32)
    expected = nchw_to_nhwc(run_torch(conv, x))
    kernel = [port.conv_kernel(conv.weight.detach().numpy())]
    explicit = keras.Sequential([layers.ZeroPadding2D(1), layers.Conv2D(4, 3, strides=2, use_bias=False)])
    same = keras.Sequential([layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False)])
    for model in (explicit, same):
        model.build((None, 8, 8, 2))
        model.layers[-1].set_weights(kernel)
    np.testing.assert_allclose(explicit(nchw_to_nhwc(x)).numpy(), expected, atol=1e-5)
    # TF's 'same' pads stride-2 convolutions bottom/right only: the port would be wrong with it.
    assert np.max(np.abs(same(nchw_to_nhwc(x)).numpy() - expected)) > 1e-2


def test_batch_norm_statistics_and_epsilon() -> None:
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 3.0)
    state = {f"bn.{k}": v.numpy() for k, v in bn.state_dict().items()}
    layer = layers.BatchNormalization(epsilon=bn.eps)
    layer.build((None, 4, 4, 6))
    layer.set_weights([state[f"bn.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
    x = RNG.standard_normal((3, 6, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(
        nchw_to_nhwc(run_torch(bn, x)), layer(nchw_to_nhwc(x), training=False).numpy(), atol=1e-5
    )


def test_dense_after_flatten_permutes_rows_from_chw_to_hwc() -> None:
    linear = nn.Linear(4 * 3 * 2, 5)
    x = RNG.standard_normal((2, 4, 3, 2)).astype(np.float32)
    expected = run_torch(nn.Sequential(nn.Flatten(), linear), x)
    layer = layers.Dense(5)
    layer.build((None, 24))
    weight = linear.weight.detach().numpy()
    layer.set_weights([port.dense_kernel(weight, chw=(4, 3, 2)), linear.bias.detach().numpy()])
    got = layer(nchw_to_nhwc(x).reshape(2, -1)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    layer.set_weights([port.dense_kernel(weight), linear.bias.detach().numpy()])  # without the permutation
    assert np.max(np.abs(layer(nchw_to_nhwc(x).reshape(2, -1)).numpy() - expected)) > 1e-2


def test_maxpool_zero_padding_equals_negative_infinity_after_relu() -> None:
    x = np.maximum(RNG.standard_normal((1, 3, 9, 9)).astype(np.float32), 0)
    expected = nchw_to_nhwc(run_torch(nn.MaxPool2d(3, stride=2, padding=1), x))
    model = keras.Sequential([layers.ZeroPadding2D(1), layers.MaxPooling2D(3, strides=2)])
    np.testing.assert_allclose(model(nchw_to_nhwc(x)).numpy(), expected, atol=0)


def zoo(name: str) -> modelspec.ModelSpecFile:
    return modelspec.load(REPO / "models" / "zoo" / f"{name}.py")


@pytest.mark.parametrize("name", ["digits", "resnet18"])
def test_whole_model_port_reproduces_pytorch(name: str) -> None:
    torch.manual_seed(1)
    shapes = {"digits": (4, 1, 8, 8), "resnet18": (2, 3, 224, 224)}
    spec = zoo(name)
    model = spec.module.architecture()
    with torch.no_grad():  # non-trivial BN statistics, so a skipped BN port would show
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    keras_model = spec.build_keras()
    portrules.port(model, keras_model, spec.keras_port_hints)
    x = RNG.standard_normal(shapes[name]).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in model.eval()(torch.from_numpy(x))]
    got = [t.numpy() for t in keras_model(x, training=False)]
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)  # logits
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)  # probabilities


def test_digits_needs_its_flatten_hint() -> None:
    spec = zoo("digits")
    model, keras_model = spec.module.architecture(), spec.build_keras()
    portrules.port(model, keras_model)  # without keras_port_hints: fc1's rows stay in torch's (C, H, W) order
    x = RNG.standard_normal((4, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x))[0].numpy()
    assert np.max(np.abs(keras_model(x, training=False)[0].numpy() - want)) > 1e-3


def test_port_refuses_to_leave_a_tensor_behind() -> None:
    spec = zoo("digits")
    model = spec.module.architecture()
    model.fc2.register_buffer("stray", torch.zeros(1))
    with pytest.raises(ValueError, match=r"not ported.*fc2\.stray"):
        portrules.port(model, spec.build_keras(), spec.keras_port_hints)


def test_port_refuses_mismatched_epsilon() -> None:
    spec = zoo("digits")
    model = spec.module.architecture()
    model.bn1.eps = 1e-3
    with pytest.raises(ValueError, match="epsilon"):
        portrules.port(model, spec.build_keras(), spec.keras_port_hints)
