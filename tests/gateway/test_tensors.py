"""Tensor codecs: round trips (property-based), nested vs flat data, and precise client errors."""

from __future__ import annotations

import json

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
    decode_nested,
    dumps_arrays,
    encode_binary,
    encode_json_data,
    nested_shape,
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
    """Through the JSON text the gateway writes (dumps_arrays) and back: every value survives exactly."""
    flat = json.loads(dumps_arrays({"data": encode_json_data(tensor)}))["data"]
    data = json.loads(dumps_arrays({"data": tensor.data}))["data"] if nested else flat
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


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        ([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]], [[9.0, 0.0], [1.0, 2.0]]], [3, 2, 2]),
        ([1.0, 2.0, 3.0], [3]),
        (7.0, []),
        ([[]], [1, 0]),
        ([], [0]),
    ],
)
def test_nested_shape_agrees_with_numpy(data: object, shape: list[int]) -> None:
    dims, flat = nested_shape(data)
    assert dims == shape == list(np.shape(data))
    assert flat == np.asarray(data).reshape(-1).tolist()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([[1.0], [2.0, 3.0], []], "rows of lengths [0, 1, 2]"),  # as many leaves as a [3, 1] shape needs
        ([[1.0, 2.0], 3.0], "lists and values side by side"),
        ([[[1.0, 2.0]], [[3.0], [4.0]]], "rows of lengths [1, 2]"),
        ([[[1.0, 2.0]], [[3.0, 4.0, 5.0]]], "rows of lengths [2, 3]"),
    ],
)
def test_ragged_nested_lists_are_refused_naming_the_input(data: object, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match="input 'x' is not a rectangular array") as info:
        decode_nested("x", "FP32", data)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("datatype", "data", "fragment"),
    [
        ("FP32", [[1.0, True]], "must be numbers"),
        ("FP32", [["1.5"]], "must be numbers"),
        ("FP32", [[1.0], [1e39]], "beyond the largest finite FP32"),
        ("FP32", [[10**400]], "beyond the largest finite FP32"),
        ("FP16", [65520.0], "beyond the largest finite FP16"),  # the first magnitude that rounds to inf
        ("INT8", [[1, 300]], "data does not fit datatype INT8"),
    ],
)
def test_nested_values_must_fit_the_datatype(datatype: str, data: object, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match="tensor 'x'") as info:
        decode_nested("x", datatype, data)
    assert fragment in info.value.message


def test_decode_nested_keeps_values_and_shape() -> None:
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    tensor = decode_nested("x", "FP32", x.tolist())
    assert tensor.shape == [2, 1, 8, 8] and tensor.data.dtype == np.float32
    assert np.array_equal(tensor.data, x)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_])
def test_dumps_arrays_round_trips_every_value_exactly(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 3, 4)) * 50).astype(dtype)
    back = json.loads(dumps_arrays({"inputs": {"x": x}}))["inputs"]["x"]
    assert np.array_equal(np.asarray(back, dtype=dtype), x)
    assert list(np.shape(back)) == [2, 3, 4]


def test_dumps_arrays_writes_float32_in_its_own_shortest_form() -> None:
    assert dumps_arrays({"x": np.array([0.1, 1e-8], np.float32)}) == b'{"x":[0.1,1e-8]}'


def test_dumps_arrays_takes_arrays_that_are_not_contiguous() -> None:
    x = np.arange(16, dtype=np.float32).reshape(4, 4)[:, ::2]
    assert json.loads(dumps_arrays({"x": x}))["x"] == x.tolist()


def test_dumps_arrays_refuses_what_json_cannot_carry() -> None:
    items = np.empty(1, dtype=object)
    items[0] = b"\x00raw"
    with pytest.raises(TypeError, match="bytes"):
        dumps_arrays({"x": items})


def test_float_json_tensors_keep_their_numbers_and_build_the_array_on_demand() -> None:
    """FP32/FP64 JSON numbers stay a list (ints become floats, as an array would hold them); the array appears,
    with the datatype's dtype and the shape, only when something asks for it. Other types are arrays at once."""
    tensor = decode_json("x", "FP32", [2, 2], [0.5, 1, -2.25, 3])
    assert tensor.flat == [0.5, 1.0, -2.25, 3.0] and all(type(v) is float for v in tensor.flat)
    assert tensor.size == 4 and encode_json_data(tensor) is tensor.flat
    assert tensor.data.dtype == np.float32 and tensor.data.tolist() == [[0.5, 1.0], [-2.25, 3.0]]
    assert decode_nested("x", "FP64", [[1.5], [2.5]]).flat == [1.5, 2.5]
    for datatype in ("FP16", "INT32", "UINT8", "BOOL"):
        value = True if datatype == "BOOL" else 1
        assert decode_json("x", datatype, [1], [value]).flat is None


def test_an_infer_tensor_holds_exactly_one_form() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        InferTensor("x", "FP32", [1])
    with pytest.raises(ValueError, match="exactly one"):
        InferTensor("x", "FP32", [1], np.zeros(1, np.float32), flat=[0.0])


@settings(max_examples=150, deadline=None)
@given(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), st.sampled_from(["FP32", "FP64"]))
def test_nested_cuts_the_flat_numbers_as_the_shape_says(shape: tuple[int, ...], datatype: str) -> None:
    """TF's JSON body from a kept list equals the array's own nesting, for every shape (scalars and empty too)."""
    array = np.arange(int(np.prod(shape)), dtype=V2_TO_NUMPY[datatype]).reshape(shape) / 4
    tensor = decode_json("x", datatype, list(shape), array.reshape(-1).tolist())
    assert tensor.flat is not None
    assert json.loads(dumps_arrays({"x": tensor.nested()}))["x"] == array.tolist()


@pytest.mark.parametrize(
    ("datatype", "text", "refused"),
    [
        ("FP32", "3.4028235e+38", "3.4028236e+38"),  # float32's shortest text for its largest value; the next
        ("FP32", "3.40282356779733e+38", "3.40282356779734e+38"),  # either side of where float32 rounds to inf
        ("FP16", "65519.99", "65520"),
        ("FP64", "1.7976931348623157e+308", "1e999"),
    ],
)
def test_numbers_that_round_to_the_largest_finite_value_are_kept(datatype: str, text: str, refused: str) -> None:
    """A number past the type's largest value that still rounds to it (the gateway's own JSON for float32's largest
    value is one) is that value; from the first number that rounds to inf on, a 400."""
    dtype = V2_TO_NUMPY[datatype]
    tensor = decode_json("x", datatype, [2], [-json.loads(text), json.loads(text)])
    np.testing.assert_array_equal(tensor.data, np.asarray([-np.finfo(dtype).max, np.finfo(dtype).max], dtype))
    with pytest.raises(InvalidArgument, match=f"beyond the largest finite {datatype}"):
        decode_json("x", datatype, [2], [1.0, -json.loads(refused)])


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_infinity_from_an_overlong_exponent_is_refused(datatype: str) -> None:
    """Python's parser reads 1e999 as inf; a float tensor refuses it like any value past the type's range."""
    with pytest.raises(InvalidArgument, match=f"beyond the largest finite {datatype}"):
        decode_json("x", datatype, [2], [1.0, json.loads("1e999")])
