"""Weight port by rules for any spec with build_keras(): each torch layer type has one rule to its Keras twin.

Keras layer names are the torch module paths with '.' replaced by '_' (the zoo's build_keras() follow it). Every torch
parameter and buffer must land in exactly one Keras weight and every Keras weight must be filled: a port that
skipped a layer would still run, so both sides are checked. A torch layer with weights and no rule is refused
before anything is built, naming the layer and its type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import nn

from models.port import conv_kernel, dense_kernel


class UnsupportedLayerError(ValueError):
    """A torch layer with weights has no port rule; the message names the layer and its type."""


State = Mapping[str, np.ndarray]
Rule = Callable[[nn.Module, str, State, Any, dict[str, Any]], tuple[list[np.ndarray], list[str]]]


def _conv2d(module: nn.Module, path: str, state: State, layer: Any, hint: dict[str, Any]):
    assert isinstance(module, nn.Conv2d)
    weight = state[f"{path}.weight"]
    if module.groups == 1:
        values = [conv_kernel(weight)]
    elif module.groups == module.in_channels == module.out_channels:
        # depthwise: torch (C, 1, kh, kw) -> Keras DepthwiseConv2D (kh, kw, C, 1)
        values = [np.ascontiguousarray(weight.transpose(2, 3, 0, 1))]
    else:
        raise UnsupportedLayerError(
            f"layer {path!r}: Conv2d with groups={module.groups} (neither 1 nor depthwise) has no port rule"
        )
    keys = [f"{path}.weight"]
    if module.bias is not None:
        values.append(state[f"{path}.bias"])
        keys.append(f"{path}.bias")
    return values, keys


def _batch_norm(module: nn.Module, path: str, state: State, layer: Any, hint: dict[str, Any]):
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    _same_epsilon(path, module.eps, layer.epsilon)
    names = ("weight", "bias", "running_mean", "running_var")
    keys = [f"{path}.{k}" for k in names] + [f"{path}.num_batches_tracked"]  # a training-only counter
    return [state[f"{path}.{k}"] for k in names], keys


def _linear(module: nn.Module, path: str, state: State, layer: Any, hint: dict[str, Any]):
    assert isinstance(module, nn.Linear)
    chw = tuple(hint["flatten_chw"]) if "flatten_chw" in hint else None
    values = [dense_kernel(state[f"{path}.weight"], chw)]  # type: ignore[arg-type]
    keys = [f"{path}.weight"]
    if module.bias is not None:
        values.append(state[f"{path}.bias"])
        keys.append(f"{path}.bias")
    return values, keys


def _layer_norm(module: nn.Module, path: str, state: State, layer: Any, hint: dict[str, Any]):
    assert isinstance(module, nn.LayerNorm)
    _same_epsilon(path, module.eps, layer.epsilon)
    if not module.elementwise_affine:
        return [], []
    values, keys = [state[f"{path}.weight"]], [f"{path}.weight"]
    if module.bias is not None:
        values.append(state[f"{path}.bias"])
        keys.append(f"{path}.bias")
    return values, keys


def _embedding(module: nn.Module, path: str, state: State, layer: Any, hint: dict[str, Any]):
    return [state[f"{path}.weight"]], [f"{path}.weight"]


def _multihead_attention(module: nn.Module, path: str, state: State, layer: Any, hint: dict[str, Any]):
    """torch packs q, k, v into in_proj (3d, d); Keras keeps per-head kernels (d, heads, head_dim)."""
    assert isinstance(module, nn.MultiheadAttention)
    if not module._qkv_same_embed_dim or module.in_proj_bias is None or module.bias_k is not None:
        raise UnsupportedLayerError(
            f"layer {path!r}: MultiheadAttention needs kdim=vdim=embed_dim, bias=True, add_bias_kv=False to be ported"
        )
    dim, heads = module.embed_dim, module.num_heads
    head_dim = dim // heads
    weight, bias = state[f"{path}.in_proj_weight"], state[f"{path}.in_proj_bias"]
    values = []
    for i in range(3):  # query, key, value
        w = weight[i * dim : (i + 1) * dim]  # (out=d, in=d)
        values.append(np.ascontiguousarray(w.T.reshape(dim, heads, head_dim)))
        values.append(np.ascontiguousarray(bias[i * dim : (i + 1) * dim].reshape(heads, head_dim)))
    out_w = state[f"{path}.out_proj.weight"]  # (d, d): out = W @ concat(heads)
    values.append(np.ascontiguousarray(out_w.T.reshape(heads, head_dim, dim)))
    values.append(state[f"{path}.out_proj.bias"])
    keys = [f"{path}.{k}" for k in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")]
    return values, keys


def _same_epsilon(path: str, torch_eps: float, keras_eps: float) -> None:
    if not np.isclose(torch_eps, keras_eps):
        raise ValueError(f"layer {path!r}: epsilon differs (torch {torch_eps}, Keras {keras_eps})")


RULES: dict[type[nn.Module], Rule] = {
    nn.Conv2d: _conv2d,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.Linear: _linear,
    nn.LayerNorm: _layer_norm,
    nn.Embedding: _embedding,
    nn.MultiheadAttention: _multihead_attention,
}
# Modules whose weights belong to their parent's rule (MultiheadAttention's out_proj).
OWNED_BY_PARENT = (nn.modules.linear.NonDynamicallyQuantizableLinear,)


def _rule(module: nn.Module) -> Rule | None:
    return RULES.get(type(module)) or next((r for t, r in RULES.items() if isinstance(module, t)), None)


def check_supported(torch_model: nn.Module) -> None:
    """Refuse, naming layer and type, any torch layer holding weights that no rule ports."""
    for path, module in torch_model.named_modules():
        own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        if not own or isinstance(module, OWNED_BY_PARENT) or _rule(module) is not None:
            continue
        supported = ", ".join(sorted(t.__name__ for t in RULES))
        raise UnsupportedLayerError(
            f"unsupported op: layer {path or '<root>'!r} is a {type(module).__module__}.{type(module).__name__} "
            f"with weights {[n for n, _ in own]} and the Keras weight port has no rule for it (rules: {supported}); "
            "rewrite it with supported layers, or drop build_keras() to try the ONNX converter"
        )


def port(torch_model: nn.Module, keras_model: Any, hints: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Copy every weight of `torch_model` into `keras_model` in place; check both sides are fully covered."""
    check_supported(torch_model)
    hints = hints or {}
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    modules = dict(torch_model.named_modules())
    by_keras_name = {path.replace(".", "_"): path for path in modules if path}
    used: set[str] = set()
    for layer in keras_model.layers:
        if not layer.weights:
            continue
        path = by_keras_name.get(layer.name)
        if path is None:
            raise ValueError(
                f"Keras layer {layer.name!r} has weights but names no torch module "
                "(name Keras layers after the torch module path with '.' -> '_')"
            )
        rule = _rule(modules[path])
        if rule is None:
            raise UnsupportedLayerError(f"layer {path!r}: no port rule for {type(modules[path]).__name__}")
        values, keys = rule(modules[path], path, state, layer, dict(hints.get(path, {})))
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ValueError(f"layer {path!r}: Keras {type(layer).__name__} expects shapes {expected}, port gave {got}")
        layer.set_weights(values)
        used.update(k for k in keys if k in state)
    missing = sorted(set(state) - used)
    if missing:
        raise ValueError(f"torch tensors not ported (no Keras layer named after their module): {missing}")
