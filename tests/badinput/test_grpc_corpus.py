"""The bad-input corpus over gRPC (official tritonclient messages on the wire): INVALID_ARGUMENT, NOT_FOUND
or RESOURCE_EXHAUSTED naming the problem; never INTERNAL/UNKNOWN; the gateway keeps serving."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from corpus import MAX_BODY
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.e2e
METHOD = "/inference.GRPCInferenceService/ModelInfer"
INVALID, NOT_FOUND, EXHAUSTED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
GOOD = np.full((1, 1, 8, 8), 0.5, dtype="<f4").tobytes()


def request(
    shape: list[int] | None = None, datatype: str = "FP32", raw: list[bytes] | None = None, **kw: Any
) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=kw.pop("model", "digits"), model_version=kw.pop("version", ""))
    req.inputs.add(name=kw.pop("name", "input"), datatype=datatype, shape=shape if shape is not None else [1, 1, 8, 8])
    if raw is not None:
        req.raw_input_contents.extend(raw)
    return req


def _contents(field: str, values: list[Any], shape: list[int], datatype: str = "FP32") -> pb.ModelInferRequest:
    req = request(shape, datatype)
    getattr(req.inputs[0].contents, field).extend(values)
    return req


def _invalid_utf8_name() -> bytes:
    wire = request(raw=[GOOD], model="QQQQ").SerializeToString()
    return wire.replace(b"QQQQ", b"\xff\xfe\xff\xfe")


CASES: dict[str, tuple[Callable[[], Any], grpc.StatusCode, tuple[str, ...], dict[str, str]]] = {
    "raw-short": (lambda: request(raw=[GOOD[:-1]]), INVALID, ("bytes",), {}),
    "raw-long": (lambda: request(raw=[GOOD + b"\0"]), INVALID, ("bytes",), {}),
    "raw-empty": (lambda: request(raw=[b""]), INVALID, ("bytes",), {}),
    "raw-two-for-one": (lambda: request(raw=[GOOD, GOOD]), INVALID, ("raw_input_contents",), {}),
    "raw-shape-lies": (lambda: request([2, 1, 8, 8], raw=[GOOD]), INVALID, ("bytes",), {}),
    "raw-negative-shape": (lambda: request([-1, 1, 8, 8], raw=[GOOD]), INVALID, ("shape",), {}),
    "raw-huge-shape": (lambda: request([2**40, 2**20, 8, 8], raw=[GOOD]), INVALID, ("bytes", "shape"), {}),
    "raw-unknown-dtype": (lambda: request(datatype="FLOAT", raw=[GOOD]), INVALID, ("datatype",), {}),
    "raw-model-dtype": (lambda: request(datatype="INT32", raw=[GOOD]), INVALID, ("datatype",), {}),
    "raw-model-shape": (lambda: request([1, 64], raw=[GOOD]), INVALID, ("shape",), {}),
    "raw-wrong-name": (lambda: request(raw=[GOOD], name="x"), INVALID, ("x",), {}),
    "contents-short": (lambda: _contents("fp32_contents", [0.5] * 63, [1, 1, 8, 8]), INVALID, ("element", "shape"), {}),
    "contents-negative-dims": (lambda: _contents("fp32_contents", [0.5] * 64, [-1, -64]), INVALID, ("shape",), {}),
    "contents-huge-shape": (
        lambda: _contents("fp32_contents", [0.5], [2**32, 2**32]),
        INVALID,
        ("shape", "element"),
        {},
    ),
    "contents-fp16": (lambda: _contents("fp32_contents", [0.5] * 64, [1, 1, 8, 8], "FP16"), INVALID, ("datatype",), {}),
    "contents-int-for-model": (
        lambda: _contents("int_contents", [1] * 64, [1, 1, 8, 8], "INT32"),
        INVALID,
        ("datatype",),
        {},
    ),
    "contents-bytes": (
        lambda: _contents("bytes_contents", [b"a"] * 64, [1, 1, 8, 8], "BYTES"),
        INVALID,
        ("datatype",),
        {},
    ),
    "no-inputs": (lambda: pb.ModelInferRequest(model_name="digits"), INVALID, ("input",), {}),
    "unknown-model": (lambda: request(raw=[GOOD], model="nope"), NOT_FOUND, ("nope",), {}),
    "empty-model": (lambda: request(raw=[GOOD], model=""), NOT_FOUND, ("model",), {}),
    "unknown-version": (lambda: request(raw=[GOOD], version="7"), NOT_FOUND, ("version",), {}),
    "unknown-output": (lambda: _with_output(request(raw=[GOOD]), "nope"), INVALID, ("nope",), {}),
    "unknown-backend": (lambda: request(raw=[GOOD]), INVALID, ("backend",), {"backend": "triton"}),
    "invalid-utf8-model": (_invalid_utf8_name, INVALID, ("request", "parse", "decode", "utf"), {}),
    "garbage-bytes": (lambda: b"\xff\xff\xff\xff\x0f", INVALID, ("request", "parse", "decode"), {}),
    "oversized": (lambda: request(raw=[b"\0" * (MAX_BODY + 1024)]), EXHAUSTED, ("larger", "max", "message"), {}),
}


def _with_output(req: pb.ModelInferRequest, name: str) -> pb.ModelInferRequest:
    req.outputs.add(name=name)
    return req


@pytest.fixture(scope="module")
def channel(bad_gateway: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{bad_gateway.grpc_port}") as ch:
        yield ch


def _call(channel: grpc.Channel, message: Any, metadata: dict[str, str]) -> Any:
    rpc = channel.unary_unary(
        METHOD,
        request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    return rpc(message, metadata=tuple(metadata.items()), timeout=15)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_grpc_request_is_a_client_error(channel: grpc.Channel, name: str) -> None:
    build, code, mentions, metadata = CASES[name]
    with pytest.raises(grpc.RpcError) as info:
        _call(channel, build(), metadata)
    err = info.value
    assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
        f"{name}: {err.code()} {err.details()}"
    )
    assert err.code() == code, f"{name}: {err.code()} {err.details()}"
    assert any(m.lower() in (err.details() or "").lower() for m in mentions), f"{name}: {err.details()!r}"
    good = _call(channel, request(raw=[GOOD]), {})
    assert [o.name for o in good.outputs] == ["logits", "probabilities"]
