"""A labelled stand-in for TensorFlow Serving, for machines where the real binary cannot run.

The real server (`tensorflow/serving:2.20.0-gpu`) ships only as a container image. Natively, twinserve runs
this small Python server instead: it reads the same `models.config`, serves the same SavedModel layout and
speaks TF Serving's public REST and gRPC APIs, so clients cannot tell the wire apart. It says what it is in
its logs, its metrics and its model metadata, so no number measured against it passes for TF Serving's.

Run it with `python -m serving.tfserving.standin --help`.
"""

from __future__ import annotations

STANDIN_NAME = "twinserve TF Serving STAND-IN (not TensorFlow Serving)"
"""How the stand-in names itself in every banner, metric and metadata answer."""

STANDIN_NOTICE = (
    f"{STANDIN_NAME}: a Python test double of tensorflow_model_server that speaks its REST and gRPC APIs "
    "with tf.saved_model.load underneath; its performance is not TensorFlow Serving's"
)
"""The one-sentence explanation attached to metadata answers and the startup log."""

METADATA_KEY = "twinserve_standin"
"""Extra key in REST metadata answers and in GetModelMetadataResponse.metadata."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest REST body and gRPC message accepted or sent: room for a batch of ~100 resnet18 inputs over gRPC."""
