"""One loaded SavedModel version: its signatures, input checks, inference and warm-up replay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from serving.tfserving.standin.errors import ConfigError, InvalidArgumentError, ServingError

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape (None: unknown rank; -1 entries: any size) of one signature tensor."""

    name: str
    dtype: np.dtype[Any]
    dtype_name: str
    shape: tuple[int, ...] | None

    @classmethod
    def from_info(cls, name: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
        """Read a SignatureDef TensorInfo."""
        dtype = tf.dtypes.as_dtype(info.dtype)
        shape = _shape(info.tensor_shape)
        return cls(name=name, dtype=np.dtype(dtype.as_numpy_dtype), dtype_name=dtype.name, shape=shape)

    def check(self, value: np.ndarray, signature: str) -> None:
        """Raise InvalidArgumentError naming the problem when `value` does not fit this tensor."""
        if value.dtype != self.dtype:
            raise InvalidArgumentError(
                f"input '{self.name}' has dtype {_dtype_name(value.dtype)} but signature {signature} "
                f"expects {self.dtype_name}"
            )
        if self.shape is None:
            return
        pairs = zip(self.shape, value.shape, strict=False)  # lengths compared first
        fits = value.ndim == len(self.shape) and all(s in (-1, d) for s, d in pairs)
        if not fits:
            raise InvalidArgumentError(
                f"input '{self.name}' has shape {list(value.shape)} but signature {signature} expects "
                f"{list(self.shape)} (-1: any size)"
            )


def _dtype_name(dtype: np.dtype[Any]) -> str:
    try:
        return str(tf.dtypes.as_dtype(dtype).name)
    except TypeError:
        return str(dtype)


def tensor_from_proto(name: str, proto: Any) -> np.ndarray:
    """Decode a TensorProto into an array, or InvalidArgumentError naming the input."""
    try:
        return np.asarray(tf.make_ndarray(proto))
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"input '{name}': cannot decode TensorProto: {e}") from e


def _shape(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...] | None:
    return None if proto.unknown_rank else tuple(int(d.size) for d in proto.dim)


class Signature:
    """A callable signature of a loaded SavedModel, checked against its SignatureDef."""

    def __init__(self, name: str, sig_def: meta_graph_pb2.SignatureDef, fn: Any) -> None:
        self.name = name
        self.method_name = sig_def.method_name
        self.inputs = {k: TensorSpec.from_info(k, v) for k, v in sorted(sig_def.inputs.items())}
        self.outputs = {k: TensorSpec.from_info(k, v) for k, v in sorted(sig_def.outputs.items())}
        self._fn = fn
        specs = [*self.inputs.values(), *self.outputs.values()]
        # Batching joins requests along axis 0, so every tensor needs a free leading dimension.
        self.batchable = all(s.shape and s.shape[0] == -1 for s in specs) and all(
            -1 not in s.shape[1:] for s in self.inputs.values() if s.shape
        )

    def validate(self, inputs: Tensors) -> int:
        """Check names, dtypes and shapes of `inputs`; return their common batch size (0 if none)."""
        missing, extra = set(self.inputs) - set(inputs), set(inputs) - set(self.inputs)
        if missing or extra:
            raise InvalidArgumentError(
                f"Request inputs do not match the inputs of signature {self.name}: "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}; expected {sorted(self.inputs)}"
            )
        for name, value in inputs.items():
            self.inputs[name].check(value, self.name)
        sizes = {name: v.shape[0] for name, v in inputs.items() if v.ndim}
        if len(set(sizes.values())) > 1:
            raise InvalidArgumentError(f"input tensors must have equal 0th-dimension size, got {sizes}")
        return next(iter(sizes.values()), 0)

    def run(self, inputs: Tensors) -> Tensors:
        """Run the signature on checked inputs (blocking: call it from a worker thread)."""
        try:
            result = self._fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise InvalidArgumentError(e.message) from e
        except tf.errors.OpError as e:
            raise ServingError(f"{type(e).__name__}: {e.message}") from e
        return {k: result[k].numpy() for k in self.outputs}


class Servable:
    """One version of one model, loaded with tf.saved_model.load."""

    def __init__(self, name: str, version: int, path: Path) -> None:
        self.name = name
        self.version = version
        self.path = path
        try:
            saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
            self._module = tf.saved_model.load(str(path))  # keeps the functions' variables alive
        except (OSError, ValueError, DecodeError, tf.errors.OpError) as e:
            raise ConfigError(f"cannot load SavedModel {path}: {e}") from e
        defs = saved.meta_graphs[0].signature_def
        self.signature_defs = get_model_metadata_pb2.SignatureDefMap(signature_def=defs)
        """The whole map, `__saved_model_init_op` included, as the real server's metadata returns it."""
        self.signatures = {k: Signature(k, defs[k], fn) for k, fn in self._module.signatures.items()}

    def signature(self, name: str) -> Signature:
        """The signature called `name` ("" means serving_default), or InvalidArgumentError."""
        try:
            return self.signatures[name or DEFAULT_SIGNATURE]
        except KeyError:
            raise InvalidArgumentError(
                f'Serving signature name: "{name}" not found in signature def (model {self.name} has '
                f"{sorted(self.signatures)})"
            ) from None

    def replay_warmup(self) -> int:
        """Run every PredictLog of assets.extra/tf_serving_warmup_requests, as the real server does at load.

        Returns how many were replayed; a record that fails fails the load, as in TF Serving.
        """
        path = self.path / WARMUP_FILE
        if not path.exists():
            return 0
        try:
            records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
            entries = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
        except (DecodeError, tf.errors.OpError) as e:
            raise ConfigError(f"cannot read warm-up requests from {path}: {e}") from e
        for count, entry in enumerate(entries):
            where = f"warm-up record {count} of {path}"
            if entry.WhichOneof("log_type") != "predict_log":
                raise ConfigError(f"{where}: only predict_log records are supported by the stand-in")
            request = entry.predict_log.request
            try:
                signature = self.signature(request.model_spec.signature_name)
                inputs = {k: tensor_from_proto(k, v) for k, v in request.inputs.items()}
                signature.validate(inputs)
                signature.run(inputs)
            except ServingError as e:
                raise ConfigError(f"{where} failed: {e.message}") from e
        return len(entries)


def discover_versions(base_path: Path) -> list[int]:
    """Version numbers found under `base_path` (numeric subfolders, as the real server's file source)."""
    if not base_path.is_dir():
        raise ConfigError(f"model base path {base_path} is not a directory")
    return [int(p.name) for p in base_path.iterdir() if p.is_dir() and p.name.isascii() and p.name.isdigit()]
