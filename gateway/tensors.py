"""InferTensor and its codecs: v2 JSON (nested or flat `data`) and the binary tensor extension."""

from __future__ import annotations

import math
import struct
from itertools import chain
from typing import Any

import numpy as np
import orjson

from gateway.errors import InvalidArgument

# v2 datatype name -> numpy dtype; BYTES is an object array of bytes (length-prefixed on the binary wire).
V2_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2: dict[np.dtype[Any], str] = {v: k for k, v in V2_TO_NUMPY.items()}


class InferTensor:
    """One named tensor: v2 datatype name, shape, and its values.

    The values are a numpy array of that shape (`data`), or, for a float tensor that came as JSON numbers, the
    flat list of those numbers (`flat`) with the array built from it only when something asks for `data`. A
    request that comes in as JSON and leaves for a JSON upstream (v2 REST to TF's REST API) then never builds an
    array: on an idle gateway each numpy conversion costs more than the JSON work around it.
    """

    __slots__ = ("_array", "datatype", "flat", "name", "shape")

    def __init__(
        self,
        name: str,
        datatype: str,
        shape: list[int],
        data: np.ndarray | None = None,
        *,
        flat: list[Any] | None = None,
    ) -> None:
        if (data is None) == (flat is None):
            raise ValueError("an InferTensor needs exactly one of data and flat")
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self._array = data
        self.flat = flat
        """The values as JSON gave them, row-major (numbers already checked against the datatype), or None."""

    @property
    def data(self) -> np.ndarray:
        """The values as an array of `shape` (built from `flat` on first use)."""
        if self._array is None:
            self._array = np.asarray(self.flat, dtype=V2_TO_NUMPY[self.datatype]).reshape(self.shape)
        return self._array

    @property
    def size(self) -> int:
        """The number of elements."""
        return len(self.flat) if self.flat is not None else int(self.data.size)

    def nested(self) -> np.ndarray | list[Any] | Any:
        """The values nested as the shape says (TF's JSON), for dumps_arrays: the array, or lists cut from `flat`."""
        flat = self.flat
        if flat is None or 0 in self.shape:
            return self.data
        if not self.shape:
            return flat[0]
        for dim in reversed(self.shape[1:]):
            flat = [flat[i : i + dim] for i in range(0, len(flat), dim)]
        return flat

    def __repr__(self) -> str:
        values = self.flat if self.flat is not None else self.data
        return f"InferTensor({self.name!r}, {self.datatype}, {self.shape}, {values!r})"

    @classmethod
    def from_numpy(cls, name: str, array: np.ndarray) -> InferTensor:
        """Wrap an array, deriving datatype (little-endian native types only) and shape."""
        dtype = np.dtype(object) if array.dtype.kind in "SUO" else array.dtype.newbyteorder("=")
        if dtype not in NUMPY_TO_V2:
            raise InvalidArgument(f"tensor {name!r}: unsupported numpy dtype {array.dtype}")
        return cls(name, NUMPY_TO_V2[dtype], [int(d) for d in array.shape], array)


def numpy_dtype(name: str, datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a v2 datatype, or a 400 naming the tensor."""
    try:
        return V2_TO_NUMPY[datatype]
    except (KeyError, TypeError):  # TypeError: a JSON list or object where the name belongs
        raise InvalidArgument(
            f"tensor {name!r}: unknown datatype {datatype!r}; expected one of {', '.join(V2_TO_NUMPY)}"
        ) from None


def check_shape(name: str, shape: Any) -> list[int]:
    """A validated shape: a list of non-negative ints."""
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidArgument(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    return [int(d) for d in shape]


def _flatten(data: Any) -> list[Any]:
    """Flatten nested lists iteratively (v2 allows nested or flat `data`)."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def nested_shape(data: Any) -> tuple[list[int], list[Any]]:
    """The shape of a rectangular nested list and its leaves in row-major order; ValueError when it is ragged.

    One pass of C-level builtins per level and no array built: TF's nested-list bodies are checked for every
    request, and numpy's shape inference (np.shape builds a float64 array) cost more than the rest of the check.
    """
    shape: list[int] = []
    level = [data]
    while True:
        kinds = set(map(type, level))
        if list not in kinds:
            return shape, level
        if kinds != {list}:
            raise ValueError("not a rectangular array: lists and values side by side")
        lengths = set(map(len, level))
        if len(lengths) != 1:
            raise ValueError(f"not a rectangular array: rows of lengths {sorted(lengths)} side by side")
        shape.append(lengths.pop())
        level = list(chain.from_iterable(level))


def decode_json(name: str, datatype: str, shape: Any, data: Any) -> InferTensor:
    """Build a tensor from v2 JSON fields, checking that the element count matches the shape."""
    dims = check_shape(name, shape)
    dtype = numpy_dtype(name, datatype)
    flat = _flatten(data)
    expected = math.prod(dims)
    if len(flat) != expected:
        raise InvalidArgument(f"tensor {name!r}: shape {dims} needs {expected} elements, data has {len(flat)}")
    return _from_flat(name, datatype, dtype, dims, flat)


def decode_nested(name: str, datatype: str, data: Any) -> InferTensor:
    """Build a tensor from a nested list whose nesting is its shape (TF's `instances` and `inputs`)."""
    dtype = numpy_dtype(name, datatype)
    try:
        dims, flat = nested_shape(data)
    except ValueError as exc:
        raise InvalidArgument(f"input {name!r} is {exc}") from None
    return _from_flat(name, datatype, dtype, dims, flat)


def _overflow_at(t: type[np.floating[Any]]) -> tuple[float, float]:
    """(largest finite value of `t`, the smallest magnitude that rounds to inf in `t`): the largest value plus half
    its step, as round-to-nearest-even goes (inf for float64). Between the two a number still rounds to the
    largest value, as float32's shortest text for it, 3.4028235e+38, does."""
    info = np.finfo(t)
    step = 2.0 ** (info.maxexp - 1) * float(info.eps)  # between the largest value and the one below it
    return float(info.max), float(info.max) + step / 2


_FLOAT_LIMITS = {np.dtype(t): _overflow_at(t) for t in (np.float16, np.float32, np.float64)}
"""Per float type: its largest finite value, and the magnitude from which a number becomes inf in the type
(Python's JSON parser reads 1e999 as float64's inf)."""
KEPT_FLAT = frozenset({"FP32", "FP64"})
"""Float types whose JSON numbers a tensor keeps as they are (InferTensor.flat): any JSON writer gives them back
as the same float32 or float64. FP16 is cast now: float64 text read as half may round differently from numpy."""


def kept_flat(name: str, datatype: str, dims: list[int], numbers: list[Any], kinds: set[type]) -> InferTensor:
    """A float tensor (KEPT_FLAT) holding JSON numbers as they came; `kinds`, their types, already checked to be
    int and float only. Ints become floats, as an array would hold them and TF's JSON reads them."""
    return InferTensor(name, datatype, dims, flat=[float(v) for v in numbers] if int in kinds else numbers)


def _from_flat(name: str, datatype: str, dtype: np.dtype[Any], dims: list[int], flat: list[Any]) -> InferTensor:
    """The tensor of `flat`'s values, checked against the datatype: a 400 naming the tensor when they do not fit."""
    try:
        if datatype == "BYTES":
            if not set(map(type, flat)) <= {str}:  # bytes(n) of an int would allocate n zero bytes
                raise ValueError("BYTES data in JSON must be strings")
            items = [x.encode() for x in flat]
            array = np.empty(len(flat), dtype=object)
            array[:] = items
        elif datatype == "BOOL":
            if not set(map(type, flat)) <= {bool}:
                raise ValueError("BOOL data must be true/false")
            array = np.asarray(flat, dtype=dtype)
        else:
            kinds = set(map(type, flat))  # set of types: one C-speed pass, rejects bool/str
            if not kinds <= {int, float}:
                raise ValueError(f"{datatype} data must be numbers")
            limits = _FLOAT_LIMITS.get(dtype)
            if limits is not None and flat and max(map(abs, flat)) >= limits[1]:
                # JSON has no NaN (the parser refuses it); the value is too large for the type, or 1e999's inf
                raise ValueError(f"a value is beyond the largest finite {datatype} ({limits[0]:.4g})")
            if datatype in KEPT_FLAT:
                return kept_flat(name, datatype, dims, flat, kinds)
            array = np.asarray(flat, dtype=dtype)  # an integer out of the type's range raises OverflowError
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgument(f"tensor {name!r}: data does not fit datatype {datatype}: {exc}") from None
    return InferTensor(name, datatype, dims, array.reshape(dims))


def dumps_arrays(payload: dict[str, Any]) -> bytes:
    """JSON of a body whose tensors are numpy arrays (upstream requests, inference answers), written by orjson
    straight from the arrays.

    Each number is its own type's shortest round-trip form (a float32 0.1 is `0.1`, not float64's
    `0.10000000149011612`), which any parser reads back to the very same float32; digits' input is 1.3 µs
    instead of 26 µs through tolist() and json.dumps, a 224x224 image 3 ms instead of 65 ms. Arrays orjson does
    not take directly (not C-contiguous) go through tolist(); what JSON cannot carry (bytes) is a TypeError.
    Non-finite floats, which JSON has no number for, are written as null (json.dumps wrote NaN, which no strict
    parser reads).
    """
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY, default=_as_list)


def _as_list(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json_data(tensor: InferTensor) -> np.ndarray | list[Any]:
    """The flat `data` of a tensor for a v2 JSON response, for dumps_arrays: its JSON numbers as they came, or the
    array itself, BYTES as UTF-8 strings."""
    if tensor.flat is not None:
        return tensor.flat
    flat = tensor.data.reshape(-1)
    if tensor.datatype == "BYTES":
        return [b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b) for b in flat]
    return flat


def decode_binary(name: str, datatype: str, shape: Any, raw: bytes | memoryview) -> InferTensor:
    """Build a tensor from binary-extension bytes (little-endian; BYTES as 4-byte length + bytes)."""
    dims = check_shape(name, shape)
    dtype = numpy_dtype(name, datatype)
    count = math.prod(dims)
    if datatype == "BYTES":
        items = _split_bytes(name, bytes(raw))
        if len(items) != count:
            raise InvalidArgument(f"tensor {name!r}: shape {dims} needs {count} elements, got {len(items)}")
        array = np.empty(count, dtype=object)
        array[:] = items
        return InferTensor(name, datatype, dims, array.reshape(dims))
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidArgument(
            f"tensor {name!r}: {datatype} shape {dims} needs {expected} bytes, binary data has {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)
    return InferTensor(name, datatype, dims, array.reshape(dims))


def encode_binary(tensor: InferTensor) -> bytes:
    """The binary-extension bytes of a tensor."""
    if tensor.datatype == "BYTES":
        parts = []
        for item in tensor.data.reshape(-1):
            b = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    dtype = V2_TO_NUMPY[tensor.datatype].newbyteorder("<")
    return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()


def _split_bytes(name: str, raw: bytes) -> list[bytes]:
    """Split a length-prefixed BYTES buffer."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidArgument(f"tensor {name!r}: truncated BYTES length prefix")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidArgument(f"tensor {name!r}: BYTES element overruns the buffer")
        items.append(raw[offset : offset + size])
        offset += size
    return items
