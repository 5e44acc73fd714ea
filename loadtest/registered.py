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

from loadtest.targets import Target
from loadtest.users import wire
from loadtest.users.codecs import Call
from models import registry

TS_PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TF_PREDICT = "/tensorflow.serving.PredictionService/Predict"
V2_INFER = "/inference.GRPCInferenceService/ModelInfer"
JSON_HEADERS = {"Content-Type": "application/json"}
TF_DTYPES = {"FP32": 1, "INT32": 3, "INT64": 9, "BOOL": 10, "FP16": 19}
"""v2 datatype -> TensorProto dtype enum (tensorflow/core/framework/types.proto)."""
TF_TO_V2 = {v: k for k, v in TF_DTYPES.items()}
TF_VALUE_FIELDS = {5: "FP32", 7: "INT32", 10: "INT64", 11: "BOOL", 13: "FP16"}
"""TensorProto's typed value fields (float_val, int_val, int64_val, bool_val, half_val)."""


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
            return TS_PREDICTIONS, wire.torchserve_predictions(m.name, raw), {}
        return TS_PREDICTIONS, wire.torchserve_predictions(m.name, {"body": columns}), {}
    spec = wire._field(1, m.name.encode()) + wire._field(3, b"serving_default")
    protos = b"".join(wire._map_entry(2, s.name, _tensor_proto(s.datatype, x[s.name])) for s in m.inputs)
    return TF_PREDICT, wire._field(1, spec) + protos, {}


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
            body = wire.torchserve_prediction(body)
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


def _tensor_proto(datatype: str, array: np.ndarray) -> bytes:
    dims = b"".join(wire._field(2, wire._field(1, int(d))) for d in array.shape)
    return wire._field(1, TF_DTYPES[datatype]) + wire._field(2, dims) + wire._field(4, _le_bytes(array))


def _tf_outputs(body: bytes) -> dict[str, np.ndarray]:
    from tritonclient.utils import triton_to_np_dtype

    out = {}
    for num, _, entry in wire.fields(body):
        if num != 1 or not isinstance(entry, bytes):
            continue
        kv = {n: v for n, _, v in wire.fields(entry)}
        key, proto = kv.get(1, b""), kv.get(2, b"")
        if not isinstance(key, bytes) or not isinstance(proto, bytes):
            continue
        dtype_enum, shape, content, values = 0, [], b"", bytearray()
        for n, wt, v in wire.fields(proto):
            if n == 1 and isinstance(v, int):
                dtype_enum = v
            elif n == 2 and isinstance(v, bytes):
                shape = [
                    int(next((s for k, _, s in wire.fields(d) if k == 1), 0))  # type: ignore[call-overload]
                    for k, _, d in wire.fields(v)
                    if k == 2 and isinstance(d, bytes)
                ]
            elif n == 4 and isinstance(v, bytes):
                content = v
            elif n in TF_VALUE_FIELDS:  # packed typed values; an unpacked single value arrives as its own kind
                values += v if isinstance(v, bytes) else wire._varint(v) if wt == 0 else b""
        datatype = TF_TO_V2[dtype_enum]
        dtype = np.dtype(triton_to_np_dtype(datatype)).newbyteorder("<")
        if content:
            flat = np.frombuffer(content, dtype=dtype)
        elif datatype == "FP32":
            flat = np.frombuffer(bytes(values), dtype="<f4")
        else:  # varints: int_val, int64_val (two's complement), bool_val, half_val (the bits as uint16)
            ints = _varints(bytes(values))
            flat = np.array(ints, dtype=np.uint16).view(np.float16) if datatype == "FP16" else np.array(ints)
            flat = flat.astype(np.uint64).astype(np.int64) if datatype == "INT64" else flat.astype(dtype)
        if flat.size == 1 and int(np.prod(shape)) > 1:  # TF's shorthand: one value fills the tensor
            flat = np.full(int(np.prod(shape)), flat[0], dtype=flat.dtype)
        out[key.decode()] = flat.reshape(shape)
    return out


def _varints(buf: bytes) -> list[int]:
    values, i = [], 0
    while i < len(buf):
        value, i = wire._read_varint(buf, i)
        values.append(value)
    return values
