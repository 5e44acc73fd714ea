"""Property-based fuzzing of the gateway's decoders: arbitrary bytes and JSON in, and the only exception that
may come out is the gateway's client error (InvalidArgument -> 400 / INVALID_ARGUMENT), never anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract._generated import twinserve_kserve_pb2 as pb
from gateway.codec_grpc import Unparseable, decode_request
from gateway.codec_grpc import parser as _parser
from gateway.codec_v2 import decode_inputs, parse_body, requested_outputs
from gateway.errors import InvalidArgument
from gateway.tensors import V2_TO_NUMPY, decode_binary, decode_json

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)
DATATYPES = st.sampled_from([*V2_TO_NUMPY, "FLOAT", "", "fp32"]) | st.text(max_size=6)
SHAPES = st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=5) | JSON
KEYS = ["name", "shape", "datatype", "data", "parameters"]
TENSOR = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=6) | JSON,
        "shape": SHAPES,
        "datatype": DATATYPES | JSON,
        "data": JSON,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-5, 300) | JSON}) | JSON,
    },
)


def client_error_or_ok(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except InvalidArgument as exc:
        assert exc.message
        return None


@FUZZ
@given(st.binary(max_size=400), st.none() | st.text(max_size=6) | st.integers(-3, 500).map(str))
def test_parse_body_takes_any_bytes(body: bytes, header: str | None) -> None:
    result = client_error_or_ok(parse_body, body, header)
    if result is not None:
        assert isinstance(result[0], dict)


@FUZZ
@given(st.dictionaries(st.sampled_from(["inputs", "outputs", "parameters", "id"]), JSON | st.lists(TENSOR, max_size=3)))
def test_v2_payload_decoders_take_any_json(payload: dict[str, Any]) -> None:
    client_error_or_ok(decode_inputs, payload, memoryview(b""))
    client_error_or_ok(requested_outputs, payload)


@FUZZ
@given(st.lists(TENSOR, min_size=1, max_size=3), st.binary(max_size=300))
def test_binary_extension_takes_any_tail(tensors: list[dict[str, Any]], tail: bytes) -> None:
    head = json.dumps({"inputs": tensors}).encode()
    parsed = client_error_or_ok(parse_body, head + tail, str(len(head)))
    if parsed is not None:
        client_error_or_ok(decode_inputs, *parsed)


@FUZZ
@given(DATATYPES, SHAPES, JSON)
def test_decode_json_takes_any_fields(datatype: str, shape: Any, data: Any) -> None:
    client_error_or_ok(decode_json, "t", datatype, shape, data)


@FUZZ
@given(DATATYPES, SHAPES, st.binary(max_size=300))
def test_decode_binary_takes_any_bytes(datatype: str, shape: Any, raw: bytes) -> None:
    client_error_or_ok(decode_binary, "t", datatype, shape, raw)


@FUZZ
@given(st.binary(max_size=400))
def test_grpc_request_decoder_takes_any_bytes(wire: bytes) -> None:
    request = _parser(pb.ModelInferRequest)(wire)
    if isinstance(request, Unparseable):
        return
    client_error_or_ok(decode_request, request)


@FUZZ
@given(
    st.lists(
        st.tuples(DATATYPES, st.lists(st.integers(-(2**40), 2**40), max_size=4), st.lists(st.floats(), max_size=9)),
        max_size=3,
    ),
    st.lists(st.binary(max_size=64), max_size=3),
)
def test_grpc_typed_and_raw_contents(inputs: list[tuple[str, list[int], list[float]]], raw: list[bytes]) -> None:
    request = pb.ModelInferRequest(model_name="digits")
    for datatype, shape, values in inputs:
        item = request.inputs.add(name="input", datatype=datatype, shape=shape)
        item.contents.fp32_contents.extend(values)
    request.raw_input_contents.extend(raw)
    client_error_or_ok(decode_request, request)
