"""Write any registered signature as a TF Serving SavedModel (TF 2.20): `serving_default` plus warm-up records.

The signature takes the registered inputs by name, in torch's layout and dtypes, with None for dynamic
dimensions (batch always), and answers a dict keyed by the registered output names, cast to their dtypes.
Two sources: a Keras model (weight port) or a SavedModel written by onnx2tf in .venv-convert (TF 2.19),
which is loaded here and saved again so the artifact is TF 2.20's own and its names are ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from models.registry import TensorSpec

TF_DTYPES = {"FP32": tf.float32, "FP16": tf.float16, "INT64": tf.int64, "INT32": tf.int32, "BOOL": tf.bool}
Call = Callable[[list[tf.Tensor]], Sequence[tf.Tensor]]


class _Serving(tf.Module):
    """Holds what the signature calls (so its variables are saved) and the signature function itself."""

    def __init__(self, name: str, held: Any, call: Call, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]):
        super().__init__(name=f"twinserve_{name.replace('-', '_')}")
        self.held = held
        self._call = call
        self._outputs = tuple(outputs)
        specs = [
            tf.TensorSpec([None if d == -1 else d for d in t.shape], TF_DTYPES[t.datatype], name=t.name) for t in inputs
        ]
        self.serve = tf.function(self._serve, input_signature=specs)

    def _serve(self, *args: tf.Tensor) -> dict[str, tf.Tensor]:
        results = self._call(list(args))
        return {t.name: tf.cast(r, TF_DTYPES[t.datatype]) for t, r in zip(self._outputs, results, strict=True)}


def keras_call(model: Any) -> Call:
    """Call a Keras model on the inputs in order; a single output comes back as a one-element list."""

    def call(args: list[tf.Tensor]) -> Sequence[tf.Tensor]:
        result = model(args if len(args) > 1 else args[0], training=False)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    return call


def onnx2tf_call(loaded: Any, inputs: Sequence[TensorSpec]) -> Call:
    """Call onnx2tf's serving_default: inputs by name, outputs `output_<i>` in ONNX output order."""
    signature = loaded.signatures["serving_default"]
    accepted = set(signature.structured_input_signature[1])
    missing = [t.name for t in inputs if t.name not in accepted]
    if missing:
        raise ValueError(f"onnx2tf's SavedModel takes inputs {sorted(accepted)}, not {missing}: rename the inputs")
    order = sorted(signature.structured_outputs, key=lambda k: int(re.sub(r"\D", "", k) or 0))

    def call(args: list[tf.Tensor]) -> Sequence[tf.Tensor]:
        out = signature(**{t.name: a for t, a in zip(inputs, args, strict=True)})
        return [out[k] for k in order]

    return call


def write(
    name: str,
    held: Any,
    call: Call,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    export_dir: Path,
    warmup: Sequence[dict[str, np.ndarray]],
) -> None:
    """Save the signature under `export_dir` (a version folder) with warm-up requests built from `warmup`."""
    module = _Serving(name, held, call, inputs, outputs)
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    write_warmup(name, export_dir, warmup)


def write_warmup(name: str, export_dir: Path, batches: Sequence[dict[str, np.ndarray]]) -> None:
    """assets.extra/tf_serving_warmup_requests: PredictionLogs TF Serving replays when it loads the model."""
    target = export_dir / "assets.extra" / "tf_serving_warmup_requests"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=name, signature_name="serving_default")
            )
            for key, array in batch.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def run_savedmodel(export_dir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Load a SavedModel from disk and run its serving_default signature on named inputs."""
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
