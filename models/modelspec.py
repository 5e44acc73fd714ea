"""Load and check a model spec: the Python file a user writes to bring a PyTorch model to both stacks.

Required in the spec file:
    build() -> torch.nn.Module                 the model, eval mode, weights loaded or seeded
    example_inputs(batch) -> dict[str, ndarray] one entry per positional argument of forward, in its order
    output_names: list[str]                    one name per output of forward (a tensor or a tuple)
Optional (defaults in DEFAULTS):
    description, version, tolerance {"atol", "rtol"}, slo_p99_ms, max_batch, parity_batch,
    dynamic_dims {input: [dims]} (dim 0, the batch, is always dynamic), build_keras() -> keras.Model
    (the TF side by weight port instead of conversion), keras_port_hints {layer: {"flatten_chw": [c, h, w]}},
    architecture() -> torch.nn.Module (the untrained module TorchServe rebuilds before loading weights; build()).
The spec is imported inside TorchServe too, so it imports torch and numpy at top level and keras only inside
build_keras().
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from models.registry import NUMPY_DTYPES, TensorSpec, Tolerance

DEFAULTS: dict[str, Any] = {
    "version": 1,
    "tolerance": {"atol": 1e-4, "rtol": 1e-3},
    "slo_p99_ms": 100.0,
    "max_batch": 32,
    "parity_batch": 8,
}
V2_DATATYPES = {numpy: v2 for v2, numpy in NUMPY_DTYPES.items()}


class SpecError(ValueError):
    """The spec is wrong; the message names the spec file and what to change."""


@dataclass
class ModelSpecFile:
    """A spec file, imported and checked against its own model."""

    path: Path
    module: ModuleType
    description: str
    version: int
    output_names: tuple[str, ...]
    tolerance: Tolerance
    slo_p99_ms: float
    max_batch: int
    parity_batch: int
    dynamic_dims: dict[str, tuple[int, ...]]
    keras_port_hints: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def has_keras(self) -> bool:
        """Whether the spec defines the Keras model itself (the TF side is then a weight port)."""
        return callable(getattr(self.module, "build_keras", None))

    def build(self) -> torch.nn.Module:
        """The spec's model, in eval mode."""
        model = self.module.build()
        if not isinstance(model, torch.nn.Module):
            raise SpecError(f"{self.path}: build() must return a torch.nn.Module, got {type(model).__name__}")
        return model.eval()

    def build_keras(self) -> Any:
        """The spec's Keras model (only when has_keras)."""
        import keras

        model = self.module.build_keras()
        if not isinstance(model, keras.Model):
            raise SpecError(f"{self.path}: build_keras() must return a keras.Model, got {type(model).__name__}")
        return model

    def example_inputs(self, batch: int) -> dict[str, np.ndarray]:
        """The spec's example inputs for `batch`, checked (names, leading dimension, supported dtypes)."""
        inputs = self.module.example_inputs(batch)
        where = f"{self.path}: example_inputs({batch})"
        if not isinstance(inputs, dict) or not inputs:
            raise SpecError(f"{where} must return a non-empty dict of input name -> numpy array")
        for name, array in inputs.items():
            if not isinstance(array, np.ndarray):
                raise SpecError(f"{where}[{name!r}] must be a numpy array, got {type(array).__name__}")
            if array.dtype.name not in V2_DATATYPES:
                raise SpecError(f"{where}[{name!r}] has dtype {array.dtype.name}; supported: {', '.join(V2_DATATYPES)}")
            if array.ndim == 0 or array.shape[0] != batch:
                raise SpecError(f"{where}[{name!r}] has shape {array.shape}; its first dimension must be {batch}")
        return inputs

    def signature(self, model: torch.nn.Module) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Inputs and outputs as registered: names, v2 datatypes, shapes with -1 for dynamic dimensions."""
        inputs = self.example_inputs(1)
        check_forward_order(self.path, model, list(inputs))
        outputs = run_torch(model, inputs)
        if len(outputs) != len(self.output_names):
            raise SpecError(
                f"{self.path}: forward returns {len(outputs)} tensor(s) but output_names names "
                f"{len(self.output_names)}: {list(self.output_names)}"
            )
        unknown = sorted(set(self.dynamic_dims) - set(inputs))
        if unknown:
            raise SpecError(f"{self.path}: dynamic_dims names inputs {unknown}; inputs are {list(inputs)}")
        in_specs = []
        for name, array in inputs.items():
            dynamic = {0, *self.dynamic_dims.get(name, ())}
            shape = tuple(-1 if i in dynamic else int(d) for i, d in enumerate(array.shape))
            in_specs.append(TensorSpec(name, V2_DATATYPES[array.dtype.name], shape))
        out_specs = []
        for name, array in zip(self.output_names, outputs, strict=True):
            if array.dtype.name not in V2_DATATYPES:
                raise SpecError(f"{self.path}: output {name!r} has dtype {array.dtype.name}, not a v2 datatype")
            out_specs.append(TensorSpec(name, V2_DATATYPES[array.dtype.name], (-1, *array.shape[1:])))
        return tuple(in_specs), tuple(out_specs)


def load(path: Path | str) -> ModelSpecFile:
    """Import a spec file and check what it must define; SpecError says what is missing or wrong."""
    path = Path(path).resolve()
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    module = import_file(path)
    missing = [n for n in ("build", "example_inputs") if not callable(getattr(module, n, None))]
    if not hasattr(module, "output_names"):
        missing.append("output_names")
    if missing:
        raise SpecError(
            f"{path}: missing {', '.join(missing)}; a spec defines build() -> torch.nn.Module, "
            "example_inputs(batch) -> dict[str, numpy.ndarray] and output_names: list[str]"
        )
    names = module.output_names
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(f"{path}: output_names must be a non-empty list of strings, got {names!r}")
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: output_names has duplicates: {list(names)}")
    tolerance = {**DEFAULTS["tolerance"], **getattr(module, "tolerance", {})}
    dynamic = getattr(module, "dynamic_dims", {}) or {}
    spec = ModelSpecFile(
        path=path,
        module=module,
        description=str(getattr(module, "description", (module.__doc__ or path.stem).strip().splitlines()[0])),
        version=_positive_int(module, "version", path),
        output_names=tuple(names),
        tolerance=Tolerance(atol=float(tolerance["atol"]), rtol=float(tolerance["rtol"])),
        slo_p99_ms=float(getattr(module, "slo_p99_ms", DEFAULTS["slo_p99_ms"])),
        max_batch=_positive_int(module, "max_batch", path),
        parity_batch=_positive_int(module, "parity_batch", path),
        dynamic_dims={str(k): tuple(int(d) for d in v) for k, v in dynamic.items()},
        keras_port_hints=dict(getattr(module, "keras_port_hints", {}) or {}),
    )
    if spec.parity_batch < 2:
        raise SpecError(f"{path}: parity_batch must be >= 2 (parity runs at batch 1 and at parity_batch)")
    return spec


def import_file(path: Path) -> ModuleType:
    """Import a Python file under a name unique to its path (two specs never shadow each other)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"twinserve_spec_{path.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise SpecError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling resolve names through sys.modules
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecError(f"{path}: importing the spec failed: {type(exc).__name__}: {exc}") from exc
    return module


def _positive_int(module: ModuleType, key: str, path: Path) -> int:
    value = getattr(module, key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{path}: {key} must be a positive int, got {value!r}")
    return value


def check_forward_order(path: Path, model: torch.nn.Module, names: list[str]) -> None:
    """example_inputs' names must be forward's positional parameters, in the same order."""
    parameters = [
        p.name
        for p in inspect.signature(model.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if names != parameters:
        raise SpecError(
            f"{path}: example_inputs returns inputs {names} but {type(model).__name__}.forward takes "
            f"({', '.join(parameters)}): the names and their order must match forward's positional arguments"
        )


def run_torch(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run `model` on the inputs (positional, in order) and return its outputs as numpy arrays."""
    with torch.inference_mode():
        result = model(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()))
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    return [t.detach().cpu().numpy() for t in outputs]
