"""Helpers for the TF Serving stand-in tests: tiny SavedModels, test configs, a launcher, an HTTP helper.

The models follow the contract signature (input `input` float32 [-1,1,8,8]; outputs `logits` and
`probabilities` [-1,10]) with known weights, so every answer can be checked exactly. They do not need
artifacts/: the exporter is tested elsewhere.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.ports import free_ports

REPO = Path(__file__).resolve().parents[3]
WARMUP_RECORDS = 3
STARTUP_TIMEOUT_S = 90.0


def weights(version: int) -> np.ndarray:
    """The [64, 10] weight matrix of version `version` of the tiny model (versions differ by a factor)."""
    return (np.arange(640, dtype=np.float32).reshape(64, 10) / 640.0 - 0.5) * version


def expected_logits(version: int, x: np.ndarray) -> np.ndarray:
    """What the tiny model of `version` answers for `x` [n, 1, 8, 8]."""
    return x.reshape(-1, 64).astype(np.float32) @ weights(version)


def digits_batch(n: int, seed: int = 0) -> np.ndarray:
    """`n` random inputs of the contract shape [n, 1, 8, 8], float32 in [0, 1]."""
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


def build_model(path: Path, version: int, warmup: int) -> None:
    """Save the tiny model of `version` at `path`, with `warmup` PredictLog records in assets.extra."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(weights(version))

        @tf.function(input_signature=[tf.TensorSpec([None, 1, 8, 8], tf.float32, name="input")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:  # the TensorSpec names the input "input"
            logits = tf.matmul(tf.reshape(x, [-1, 64]), self.w)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None, 2], tf.float32, name="b"),
            ]
        )
        def add(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sum": a + b}

    module = Tiny()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve, "add": module.add})
    if warmup:
        (path / "assets.extra").mkdir()
        with tf.io.TFRecordWriter(str(path / "assets.extra" / "tf_serving_warmup_requests")) as writer:
            for n in range(1, warmup + 1):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "digits"
                request.inputs["input"].CopyFrom(tf.make_tensor_proto(digits_batch(n)))
                log = prediction_log_pb2.PredictLog(request=request)
                entry = prediction_log_pb2.PredictionLog(predict_log=log)
                writer.write(entry.SerializeToString())


MODELS_CONFIG = """
model_config_list {
  config { name: "digits" base_path: "/models/tiny" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 1 } } }
  config { name: "tiny_all" base_path: "/models/tiny" model_platform: "tensorflow"
           model_version_policy { all {} }
           version_labels { key: "stable" value: 1 }
           version_labels { key: "canary" value: 2 } }
  config { name: "tiny_v1" base_path: "/models/tiny" model_platform: "tensorflow"
           model_version_policy { specific { versions: 1 } } }
}
"""
MONITORING_CONFIG = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
BATCHING_PARAMETERS = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 2000000 }
num_batch_threads { value: 1 }
max_enqueued_batches { value: 4 }
allowed_batch_sizes: 4
allowed_batch_sizes: 8
"""
"""A long timeout (2 s) so concurrent test requests meet in one batch even when a loaded 2-core machine starts
their threads hundreds of ms apart; a full batch (8 rows) never waits for it."""


def http(method: str, url: str, body: bytes | str | dict[str, Any] | None = None) -> tuple[int, Any]:
    """One HTTP request; returns (status, parsed JSON or text) for errors as well as successes."""
    if isinstance(body, dict):
        data: bytes | None = json.dumps(body).encode()
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


@dataclass
class StandIn:
    """A running stand-in process and how to reach it."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    rest_port: int
    log_path: Path

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def launch(workdir: Path, model_root: Path, *extra: str) -> StandIn:
    """Start `python -m serving.tfserving.standin` with the test configs and wait until it answers."""
    (workdir / "models.config").write_text(MODELS_CONFIG)
    (workdir / "monitoring.config").write_text(MONITORING_CONFIG)
    grpc_port, rest_port = free_ports(2)
    log_path = workdir / "standin.log"
    argv = [
        sys.executable,
        "-m",
        "serving.tfserving.standin",
        f"--port={grpc_port}",
        "--rest_api_port",
        str(rest_port),
        "--host",
        "127.0.0.1",
        "--model_config_file",
        str(workdir / "models.config"),
        f"--model_base_path_root={model_root}",
        "--monitoring_config_file",
        str(workdir / "monitoring.config"),
        *extra,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    standin = StandIn(process, grpc_port, rest_port, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"stand-in exited with {process.returncode} during start-up:\n{standin.log()}")
        try:
            # Readiness as for the real server: the model status answers AVAILABLE once everything is loaded.
            status, body = http("GET", f"{standin.rest}/v1/models/digits")
            if status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE":
                return standin
        except OSError:
            pass
        time.sleep(0.2)
    standin.stop()
    pytest.fail(f"stand-in not ready after {STARTUP_TIMEOUT_S} s:\n{standin.log()}")


def scrape(standin: StandIn) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the Prometheus endpoint, keyed by (sample name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http("GET", f"{standin.rest}/monitoring/prometheus/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent, as a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
