"""Write a Keras model as a TF Serving SavedModel: `serving_default` signature and warm-up requests."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from models.specs import ModelSpec

WARMUP_BATCH_SIZES = (1, 8)


class _Serving(tf.Module):
    """Holds the Keras model and the signature function TF Serving calls."""

    def __init__(self, model: keras.Model, spec: ModelSpec) -> None:
        super().__init__(name=f"twinserve_{spec.name}")
        self.model = model
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec((None, *spec.input_shape), tf.float32, name=spec.input_name)],
        )

    def _serve(self, batch: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = self.model(batch, training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}


def write_savedmodel(model: keras.Model, spec: ModelSpec, export_dir: Path, samples: np.ndarray) -> None:
    """Save `model` under `export_dir` (a version folder) with warm-up records built from `samples`."""
    module = _Serving(model, spec)
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    write_warmup(spec, export_dir, samples)


def write_warmup(spec: ModelSpec, export_dir: Path, samples: np.ndarray) -> None:
    """Write assets.extra/tf_serving_warmup_requests: PredictionLogs TF Serving replays at load."""
    target = export_dir / "assets.extra" / "tf_serving_warmup_requests"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for size in WARMUP_BATCH_SIZES:
            batch = np.resize(samples, (size, *spec.input_shape)).astype(np.float32)
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=spec.name, signature_name="serving_default")
            )
            request.inputs[spec.input_name].CopyFrom(tf.make_tensor_proto(batch))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def load_signature(export_dir: Path):
    """Load the `serving_default` signature of a SavedModel from disk."""
    return tf.saved_model.load(str(export_dir)).signatures["serving_default"]
