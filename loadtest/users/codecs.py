"""Request bodies and answer parsing for every target, prebuilt so the hot path only sends bytes.

REST and gRPC bodies are built once per (sample, batch) before the run; during the run a send picks the next
prebuilt call, and the answer's logits are compared with the reference logits of exactly those samples.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract._generated import twinserve_tfserving_pb2 as tf_pb2
from contract._generated import twinserve_torchserve_pb2 as ts_pb2
from loadtest.samples import Reference, load_reference
from loadtest.targets import Target

TS_PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TF_PREDICT = "/tensorflow.serving.PredictionService/Predict"
V2_INFER = "/inference.GRPCInferenceService/ModelInfer"
JSON_HEADERS = {"Content-Type": "application/json"}
DT_FLOAT = 1


@dataclass(frozen=True)
class Call:
    """One prebuilt request: REST URL path or gRPC method, body bytes, headers/metadata, expected logits."""

    path: str
    body: bytes
    expected: np.ndarray
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[bytes], bool] | None = None
    """A registered model's answer check (every output vs torch, its tolerance); None: the zoo's logits check."""


def _v2_grpc_request(model: str, x: np.ndarray) -> bytes:
    from tritonclient.grpc import service_pb2  # protobuf only: no TensorFlow, no torch

    req = service_pb2.ModelInferRequest(model_name=model)
    tensor = req.inputs.add(name="input", datatype="FP32")
    tensor.shape.extend(x.shape)
    req.raw_input_contents.append(np.ascontiguousarray(x, "<f4").tobytes())
    return bytes(req.SerializeToString())


def torchserve_predictions(model: str, inputs: dict[str, bytes], version: str = "") -> bytes:
    """Serialized TorchServe `PredictionsRequest`."""
    return bytes(ts_pb2.PredictionsRequest(model_name=model, model_version=version, input=inputs).SerializeToString())


def torchserve_prediction(buf: bytes) -> bytes:
    """The `prediction` bytes of a serialized TorchServe `PredictionResponse`."""
    return bytes(ts_pb2.PredictionResponse.FromString(buf).prediction)


def tfserving_predict(model: str, inputs: dict[str, np.ndarray], signature: str = "serving_default") -> bytes:
    """Serialized TF Serving `PredictRequest` for the latest version of `model` (float32 `tensor_content`)."""
    req = tf_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = model, signature
    for name, array in inputs.items():
        tensor = req.inputs[name]
        tensor.dtype = DT_FLOAT
        tensor.tensor_shape.dim.extend(tf_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape)
        tensor.tensor_content = np.ascontiguousarray(array, "<f4").tobytes()
    return bytes(req.SerializeToString())


def tfserving_outputs(buf: bytes) -> dict[str, np.ndarray]:
    """The float32 `outputs` of a serialized TF Serving `PredictResponse`, from tensor_content or float_val."""
    out = {}
    for name, tensor in tf_pb2.PredictResponse.FromString(buf).outputs.items():
        if tensor.dtype != DT_FLOAT:
            raise ValueError(f"expected DT_FLOAT, got dtype {tensor.dtype!r}")
        shape = [d.size for d in tensor.tensor_shape.dim]
        flat = np.frombuffer(tensor.tensor_content, "<f4") if tensor.tensor_content else np.asarray(tensor.float_val)
        if len(flat) == 1 and np.prod(shape) > 1:
            flat = np.full(int(np.prod(shape)), flat[0])  # TF's repeated-last-value compression
        out[name] = flat.astype(np.float32).reshape(shape)
    return out


def build_call(t: Target, x: np.ndarray, expected: np.ndarray) -> Call:
    """The request for a batch `x` [b, *input_shape] to target `t`."""
    m = t.model
    if t.path == "gateway":
        if t.protocol == "rest":
            body = {
                "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
            }
            return Call(
                f"/v2/models/{m}/infer",
                json.dumps(body).encode(),
                expected,
                {**JSON_HEADERS, "X-Backend": t.framework},
            )
        return Call(V2_INFER, _v2_grpc_request(m, x), expected, {"backend": t.framework})
    if t.protocol == "rest":
        body_bytes = json.dumps({"instances": x.tolist()}).encode()
        path = f"/predictions/{m}" if t.framework == "torchserve" else f"/v1/models/{m}:predict"
        return Call(path, body_bytes, expected, dict(JSON_HEADERS))
    if t.framework == "torchserve":
        raw = np.ascontiguousarray(x, "<f4").tobytes()
        return Call(TS_PREDICTIONS, torchserve_predictions(m, {"input": raw}), expected)
    return Call(TF_PREDICT, tfserving_predict(m, {"input": x}), expected)


def build_calls(t: Target, ref: Reference, batch: int = 1, limit: int = 64) -> list[Call]:
    """Up to `limit` distinct calls cycling through the reference samples in batches of `batch`."""
    n = len(ref.inputs)
    calls = []
    for i in range(min(limit, max(1, n // batch))):
        idx = [(i * batch + j) % n for j in range(batch)]
        calls.append(build_call(t, ref.inputs[idx], ref.logits[idx]))
    return calls


def calls_for(t: Target, artifacts: Path, batch: int = 1, limit: int = 64) -> list[Call]:
    """The calls for target `t`: a registered model's from its reference.npz, the zoo's from its samples."""
    from loadtest import registered  # imports this module's Call

    if registered.is_registered(t.model, artifacts):
        return registered.calls(t, registered.load(t.model, artifacts), batch, limit)
    return build_calls(t, load_reference(t.model, artifacts), batch, limit)


def answer_is_right(t: Target, call: Call, body: bytes) -> bool:
    """Whether a successful answer to `call` matches the reference (raises on an unparseable answer)."""
    if call.check is not None:
        return call.check(body)
    return is_right(parse_logits(t, body), call.expected)


def parse_logits(t: Target, body: bytes) -> np.ndarray:
    """The `logits` output [b, classes] from a successful answer of target `t` (raises if absent)."""
    if t.path == "gateway":
        if t.protocol == "rest":
            out = {o["name"]: o for o in json.loads(body)["outputs"]}["logits"]
            return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
        from tritonclient.grpc import service_pb2

        resp = service_pb2.ModelInferResponse.FromString(body)
        for i, o in enumerate(resp.outputs):
            if o.name == "logits":
                data = (
                    np.frombuffer(resp.raw_output_contents[i], "<f4")
                    if resp.raw_output_contents
                    else np.asarray(o.contents.fp32_contents, dtype=np.float32)
                )
                return data.reshape(list(o.shape))
        raise KeyError("no 'logits' output in ModelInferResponse")
    if t.protocol == "grpc":
        if t.framework == "tfserving":
            return tfserving_outputs(body)["logits"]
        body = torchserve_prediction(body)
    doc = json.loads(body)
    if "predictions" in doc:
        return np.asarray([row["logits"] for row in doc["predictions"]], dtype=np.float32)
    outputs = doc["outputs"]
    return np.asarray(outputs["logits"] if isinstance(outputs, dict) else outputs, dtype=np.float32)


def parse_server_timing(value: str | None) -> dict[str, float]:
    """`Server-Timing: gateway;dur=1.2, upstream;dur=0.9` -> {'gateway': 1.2, 'upstream': 0.9} (ms).

    Entries without a numeric `dur` are skipped; a malformed header yields what could be read.
    """
    out: dict[str, float] = {}
    for entry in (value or "").split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        for param in params:
            key, _, val = param.partition("=")
            if name and key.strip().lower() == "dur":
                with contextlib.suppress(ValueError):
                    out[name] = float(val.strip().strip('"'))
    return out


def is_right(logits: np.ndarray, expected: np.ndarray, atol: float = 1e-3) -> bool:
    """Top-1 equal for every instance and every logit within `atol` of the reference."""
    return (
        logits.shape == expected.shape
        and bool(np.array_equal(logits.argmax(1), expected.argmax(1)))
        and bool(np.max(np.abs(logits - expected)) <= atol)
    )
