"""Tensor codecs: round trips (property-based), nested vs flat data, and precise client errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.errors import InvalidArgument
from gateway.tensors import (
    V2_TO_NUMPY,
    InferTensor,
    decode_binary,
    decode_json,
    encode_binary,
    encode_json_data,
)

NUMERIC = [k for k in V2_TO_NUMPY if k not in ("BYTES",)]
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)


@st.composite
def tensors(draw: st.DrawFn) -> InferTensor:
    datatype = draw(st.sampled_from(NUMERIC))
    dtype = V2_TO_NUMPY[datatype]
    elements = None
    if dtype.kind == "f":
        elements = st.floats(allow_nan=False, allow_infinity=False, width=dtype.itemsize * 8)
    array = draw(hnp.arrays(dtype, draw(shapes), elements=elements))
    return InferTensor.from_numpy("t", array)


@settings(max_examples=150, deadline=None)
@given(tensors())
def test_binary_round_trip(tensor: InferTensor) -> None:
    back = decode_binary("t", tensor.datatype, tensor.shape, encode_binary(tensor))
    assert back.datatype == tensor.datatype and back.shape == tensor.shape
    np.testing.assert_array_equal(back.data, tensor.data)


@settings(max_examples=150, deadline=None)
@given(tensors(), st.booleans())
def test_json_round_trip_flat_and_nested(tensor: InferTensor, nested: bool) -> None:
    flat = encode_json_data(tensor)
    data = tensor.data.tolist() if nested else flat
    back = decode_json("t", tensor.datatype, tensor.shape, data)
    np.testing.assert_array_equal(back.data, tensor.data)


@given(st.lists(st.binary(max_size=20), max_size=6))
def test_bytes_round_trip(items: list[bytes]) -> None:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    tensor = InferTensor("s", "BYTES", [len(items)], array)
    back = decode_binary("s", "BYTES", [len(items)], encode_binary(tensor))
    assert list(back.data) == items


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "fragment"),
    [
        ("FP32", [2, 2], [1.0, 2.0, 3.0], "needs 4 elements, data has 3"),
        ("FP32", [1, 2], [["a", "b"]], "data does not fit datatype FP32"),
        ("FP32", [2], [True, False], "data does not fit datatype FP32"),
        ("INT8", [1], [1000], "data does not fit datatype INT8"),
        ("FP33", [1], [1.0], "unknown datatype 'FP33'"),
        ("FP32", [-1], [1.0], "shape must be a list of non-negative integers"),
        ("BOOL", [1], [1], "data does not fit datatype BOOL"),
        ("FP32", [2], [1.0, 1e39], "beyond the largest finite FP32 (3.403e+38)"),
        ("FP16", [1], [70000.0], "beyond the largest finite FP16 (6.55e+04)"),
        ("FP64", [1], [float("1e400")], "beyond the largest finite FP64"),  # what json.loads makes of 1e400
    ],
)
def test_json_errors_name_the_tensor(datatype: str, shape: list[int], data: object, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match="tensor 'x'") as info:
        decode_json("x", datatype, shape, data)
    assert fragment in info.value.message


def test_binary_size_mismatch_names_expected_bytes() -> None:
    with pytest.raises(InvalidArgument, match=r"tensor 'x': FP32 shape \[2\] needs 8 bytes, binary data has 4"):
        decode_binary("x", "FP32", [2], b"\0" * 4)
