"""Load-test payloads and answer checks for registered models (issue 13), from their reference.npz.

A registered model has named inputs and outputs of several datatypes; its reference.npz holds the torch outputs
(`b{batch}/out/{name}`) for seeded inputs (`b{batch}/in/{name}`). Calls are built from those rows for every
target, and every answer is checked against the torch outputs of exactly its rows within the registration's
tolerance (|a - r| <= atol + rtol * |r|, and equal for integer and boolean outputs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract._generated import twinserve_tfserving_pb2 as tf_pb2
from contract._generated import twinserve_torchserve_pb2 as ts_pb2
from loadtest.targets import Target
from loadtest.users.codecs import Call
from models import registry

TS_PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TF_PREDICT = "/tensorflow.serving.PredictionService/Predict"
V2_INFER = "/inference.GRPCInferenceService/ModelInfer"
JSON_HEADERS = {"Content-Type": "application/json"}
TF_DTYPES = {"FP32": tf_pb2.DT_FLOAT, "INT32": tf_pb2.DT_INT32, "INT64": tf_pb2.DT_INT64, "BOOL": tf_pb2.DT_BOOL,
             "FP16": tf_pb2.DT_HALF}  # fmt: skip
TF_TO_V2 = {v: k for k, v in TF_DTYPES.items()}
TF_VALUE_FIELDS = {
    "FP32": "float_val",
    "INT32": "int_val",
    "INT64": "int64_val",
    "BOOL": "bool_val",
    "FP16": "half_val",
}
"""Where a TensorProto without tensor_content keeps its values (half_val: the float16 bits)."""


@dataclass(frozen=True)
class RegisteredReference:
    """Rows of reference inputs and torch outputs by name, with the model's signature and tolerance."""

    model: registry.RegisteredModel
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))


def load(name: str, artifacts: Path) -> RegisteredReference:
    """The reference rows of registered model `name` (registrations beside `artifacts`: its parent folder)."""
    root = artifacts.resolve().parent
    model = registry.get(name, root)
    path = root / model.reference
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make export` (or `make add-model`) first")
    with np.load(path) as data:
        batches = sorted({int(m.group(1)) for k in data.files if (m := re.match(r"b(\d+)/", k))})
        inputs = {t.name: np.concatenate([data[f"b{b}/in/{t.name}"] for b in batches]) for t in model.inputs}
        outputs = {t.name: np.concatenate([data[f"b{b}/out/{t.name}"] for b in batches]) for t in model.outputs}
    for tensors, spec in ((inputs, model.inputs), (outputs, model.outputs)):
        for t in spec:
            tensors[t.name] = np.ascontiguousarray(tensors[t.name], dtype=t.numpy_dtype)
    return RegisteredReference(model, inputs, outputs)


def is_registered(name: str, artifacts: Path) -> bool:
    """Whether `name` is a registered model without the zoo's samples file (the zoo keeps its own path)."""
    if (artifacts / "samples" / f"{name}.npz").exists():
        return False
    return name in registry.load_all(artifacts.resolve().parent)


def slos(models: list[str], artifacts: Path) -> dict[str, float]:
    """The p99 SLO (ms) each registered model among `models` declares in its registration."""
    registered = registry.load_all(artifacts.resolve().parent)
    return {m: registered[m].slo_p99_ms for m in models if m in registered}


def close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], atol: float, rtol: float) -> bool:
    """Every reference output present with its shape and within the tolerance (exact for ints and bools)."""
    for name, expected in want.items():
        value = got.get(name)
        if value is None or value.shape != expected.shape:
            return False
        if expected.dtype.kind in "iub":
            if not np.array_equal(value, expected):
                return False
        elif not np.allclose(value.astype(np.float64), expected.astype(np.float64), atol=atol, rtol=rtol):
            return False
    return True


def calls(t: Target, ref: RegisteredReference, batch: int = 1, limit: int = 64) -> list[Call]:
    """Up to `limit` distinct calls cycling through the reference rows in batches of `batch`, each with its check."""
    parse, model, n = parser(t, ref), ref.model, len(ref)
    out = []
    for i in range(min(limit, max(1, n // batch))):
        rows = [(i * batch + j) % n for j in range(batch)]
        want = {name: value[rows] for name, value in ref.outputs.items()}

        def check(body: bytes, want: dict[str, np.ndarray] = want) -> bool:
            return close(parse(body), want, model.tolerance.atol, model.tolerance.rtol)

        path, body, headers = build_request(t, ref, rows)
        out.append(Call(path, body, next(iter(want.values())), headers, check))
    return out


def build_request(t: Target, ref: RegisteredReference, rows: list[int]) -> tuple[str, bytes, dict[str, str]]:
    """(REST path or gRPC method, body, headers or metadata) for `rows` of the reference to target `t`."""
    m, x = ref.model, {name: value[rows] for name, value in ref.inputs.items()}
    if t.path == "gateway":
        if t.protocol == "rest":
            v2 = [
                {
                    "name": s.name,
                    "shape": list(x[s.name].shape),
                    "datatype": s.datatype,
                    "data": x[s.name].ravel().tolist(),
                }
                for s in m.inputs
            ]
            body = json.dumps({"inputs": v2}).encode()
            return f"/v2/models/{m.name}/infer", body, {**JSON_HEADERS, "X-Backend": t.framework}
        return V2_INFER, _v2_grpc(m, x), {"backend": t.framework}
    columns = json.dumps({"inputs": {name: value.tolist() for name, value in x.items()}}).encode()
    if t.protocol == "rest":
        path = f"/predictions/{m.name}" if t.framework == "torchserve" else f"/v1/models/{m.name}:predict"
        return path, columns, dict(JSON_HEADERS)
    if t.framework == "torchserve":
        if all(-1 not in s.shape[1:] for s in m.inputs):  # the generic handler's raw tensors per input name
            raw = {s.name: np.ascontiguousarray(x[s.name]).astype(x[s.name].dtype.newbyteorder("<")).tobytes()
                   for s in m.inputs}  # fmt: skip
            return TS_PREDICTIONS, _ts_request(m.name, raw), {}
        return TS_PREDICTIONS, _ts_request(m.name, {"body": columns}), {}
    request = tf_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = m.name, "serving_default"
    for spec in m.inputs:
        tensor = request.inputs[spec.name]
        tensor.dtype = TF_DTYPES[spec.datatype]
        tensor.tensor_shape.dim.extend(tf_pb2.TensorShapeProto.Dim(size=int(d)) for d in x[spec.name].shape)
        tensor.tensor_content = _le_bytes(x[spec.name])
    return TF_PREDICT, bytes(request.SerializeToString()), {}


def parser(t: Target, ref: RegisteredReference) -> Callable[[bytes], dict[str, np.ndarray]]:
    """How to read the outputs of a successful answer of target `t`, as arrays by name."""
    outputs = ref.model.outputs
    dtypes = {s.name: np.dtype(s.numpy_dtype) for s in outputs}

    def named(doc: Any, key: str) -> dict[str, np.ndarray]:
        value = doc[key]
        if not isinstance(value, dict):  # TF Serving's JSON (and our handler's): one output is left unnamed
            value = {outputs[0].name: value}
        if key == "predictions" and isinstance(value, list):
            value = {n: [row[n] for row in doc[key]] for n in dtypes}
        return {n: np.asarray(v, dtype=dtypes[n]) for n, v in value.items() if n in dtypes}

    def parse(body: bytes) -> dict[str, np.ndarray]:
        if t.path == "gateway":
            return _v2_rest_outputs(body) if t.protocol == "rest" else _v2_grpc_outputs(body)
        if t.protocol == "grpc" and t.framework == "tfserving":
            return _tf_outputs(body)
        if t.protocol == "grpc":
            body = bytes(ts_pb2.PredictionResponse.FromString(body).prediction)
        doc = json.loads(body)
        return named(doc, "outputs" if "outputs" in doc else "predictions")

    return parse


def _v2_grpc(model: registry.RegisteredModel, x: dict[str, np.ndarray]) -> bytes:
    from tritonclient.grpc import service_pb2  # protobuf only: no TensorFlow, no torch

    request = service_pb2.ModelInferRequest(model_name=model.name)
    for spec in model.inputs:
        tensor = request.inputs.add(name=spec.name, datatype=spec.datatype)
        tensor.shape.extend(x[spec.name].shape)
        request.raw_input_contents.append(_le_bytes(x[spec.name]))
    return bytes(request.SerializeToString())


def _le_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _v2_rest_outputs(body: bytes) -> dict[str, np.ndarray]:
    from tritonclient.utils import triton_to_np_dtype

    out = {}
    for o in json.loads(body)["outputs"]:
        out[o["name"]] = np.asarray(o["data"], dtype=triton_to_np_dtype(o["datatype"])).reshape(o["shape"])
    return out


def _v2_grpc_outputs(body: bytes) -> dict[str, np.ndarray]:
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import triton_to_np_dtype

    response = service_pb2.ModelInferResponse.FromString(body)
    out = {}
    for i, o in enumerate(response.outputs):
        dtype = np.dtype(triton_to_np_dtype(o.datatype)).newbyteorder("<")
        out[o.name] = np.frombuffer(response.raw_output_contents[i], dtype=dtype).reshape(list(o.shape))
    return out


def _ts_request(model: str, inputs: dict[str, bytes]) -> bytes:
    return bytes(ts_pb2.PredictionsRequest(model_name=model, input=inputs).SerializeToString())


def _tf_outputs(body: bytes) -> dict[str, np.ndarray]:
    from tritonclient.utils import triton_to_np_dtype

    out = {}
    for name, tensor in tf_pb2.PredictResponse.FromString(body).outputs.items():
        datatype = TF_TO_V2[tensor.dtype]
        dtype = np.dtype(triton_to_np_dtype(datatype)).newbyteorder("<")
        shape = [int(d.size) for d in tensor.tensor_shape.dim]
        if tensor.tensor_content:
            flat = np.frombuffer(tensor.tensor_content, dtype=dtype)
        else:
            values = list(getattr(tensor, TF_VALUE_FIELDS[datatype]))
            flat = np.array(values, dtype=np.uint16).view(np.float16) if datatype == "FP16" else np.array(values, dtype)
        if flat.size == 1 and int(np.prod(shape)) > 1:  # TF's shorthand: one value fills the tensor
            flat = np.full(int(np.prod(shape)), flat[0], dtype=flat.dtype)
        out[name] = flat.reshape(shape)
    return out
