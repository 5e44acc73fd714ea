"""Just enough protobuf wire format for two messages each way, so load generators need not import TensorFlow.

`tensorflow_serving.apis` pulls in all of TensorFlow (seconds of start-up, hundreds of MB per Locust process);
the few fields we send and read are encoded here by hand and checked against the official stubs in the tests.
  TorchServe  PredictionsRequest{1 model_name, 2 model_version, 3 map<string,bytes> input}
              PredictionResponse{1 bytes prediction}
  TF Serving  PredictRequest{1 ModelSpec{1 name, 2 Int64Value version, 3 signature_name},
                             2 map<string,TensorProto> inputs}
              PredictResponse{1 map<string,TensorProto> outputs}
              TensorProto{1 dtype, 2 TensorShapeProto{2 repeated Dim{1 size}}, 4 tensor_content, 5 float_val}
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DT_FLOAT = 1
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3 | _VARINT) + _varint(payload)
    return _varint(num << 3 | _LEN) + _varint(len(payload)) + payload


def _map_entry(num: int, key: str, value: bytes) -> bytes:
    return _field(num, _field(1, key.encode()) + _field(2, value))


def fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """Yield (field number, wire type, value) of a serialized message; LEN values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == _VARINT:
            val, i = _read_varint(buf, i)
            yield num, wt, val
        elif wt == _LEN:
            size, i = _read_varint(buf, i)
            yield num, wt, buf[i : i + size]
            i += size
        elif wt == _I32:
            yield num, wt, buf[i : i + 4]
            i += 4
        elif wt == _I64:
            yield num, wt, buf[i : i + 8]
            i += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def torchserve_predictions(model: str, inputs: dict[str, bytes], version: str = "") -> bytes:
    """Serialized `PredictionsRequest`."""
    out = _field(1, model.encode()) + (_field(2, version.encode()) if version else b"")
    return out + b"".join(_map_entry(3, k, v) for k, v in inputs.items())


def torchserve_prediction(buf: bytes) -> bytes:
    """The `prediction` bytes of a serialized `PredictionResponse`."""
    return b"".join(v for num, wt, v in fields(buf) if num == 1 and isinstance(v, bytes))


def tensor_proto(array: np.ndarray) -> bytes:
    """Serialized float32 `TensorProto` (shape + little-endian tensor_content)."""
    dims = b"".join(_field(2, _field(1, int(d))) for d in array.shape)
    return _field(1, DT_FLOAT) + _field(2, dims) + _field(4, np.ascontiguousarray(array, "<f4").tobytes())


def tfserving_predict(model: str, inputs: dict[str, np.ndarray], signature: str = "serving_default") -> bytes:
    """Serialized `PredictRequest` for the latest version of `model`."""
    spec = _field(1, model.encode()) + _field(3, signature.encode())
    return _field(1, spec) + b"".join(_map_entry(2, k, tensor_proto(v)) for k, v in inputs.items())


def tensor_from_proto(buf: bytes) -> np.ndarray:
    """Decode a float32 `TensorProto` from tensor_content or float_val (packed or not)."""
    shape: list[int] = []
    content, floats = b"", bytearray()
    for num, _, v in fields(buf):
        if num == 1 and v != DT_FLOAT:
            raise ValueError(f"expected DT_FLOAT, got dtype {v!r}")
        if num == 2 and isinstance(v, bytes):
            shape = [
                int(next((s for n, _, s in fields(d) if n == 1), 0))
                for n, _, d in fields(v)
                if n == 2 and isinstance(d, bytes)
            ]
        elif num == 4 and isinstance(v, bytes):
            content = v
        elif num == 5 and isinstance(v, bytes):
            floats += v  # packed float_val, or one unpacked fixed32
    flat = np.frombuffer(content or bytes(floats), dtype="<f4")
    if len(flat) == 1 and np.prod(shape) > 1:
        flat = np.full(int(np.prod(shape)), flat[0], dtype="<f4")  # TF's repeated-last-value compression
    return flat.reshape(shape)


def tfserving_outputs(buf: bytes) -> dict[str, np.ndarray]:
    """The `outputs` map of a serialized `PredictResponse`."""
    out = {}
    for num, _, entry in fields(buf):
        if num == 1 and isinstance(entry, bytes):
            kv = {n: v for n, _, v in fields(entry)}
            key, value = kv.get(1, b""), kv.get(2, b"")
            if isinstance(key, bytes) and isinstance(value, bytes):
                out[key.decode()] = tensor_from_proto(value)
    return out
