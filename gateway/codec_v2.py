"""v2 REST request/response bodies <-> core objects (JSON tensors and the binary tensor extension)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from gateway.errors import InvalidArgument
from gateway.metadata import ModelMetadata
from gateway.tensors import InferTensor, decode_binary, decode_json, dumps_arrays, encode_binary, encode_json_data

HEADER_LENGTH = "inference-header-content-length"
_NO_TAIL = memoryview(b"")


class DuplicateKeyError(Exception):
    """A JSON object names one key twice (parse_body with `unique_keys`): parsers disagree on which one counts."""


def parse_body(
    body: bytes, header_length: str | None, *, unique_keys: bool = False
) -> tuple[dict[str, Any], memoryview]:
    """Split a request into its JSON header and the binary tail (empty without the extension); with `unique_keys`,
    DuplicateKeyError when some object names a key twice."""
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise InvalidArgument(
                f"Inference-Header-Content-Length {header_length!r} does not fit a {len(body)}-byte body"
            )
        split = int(header_length)
        view = memoryview(body)
        raw, tail = bytes(view[:split]), view[split:]
    else:
        raw, tail = body, _NO_TAIL
    payload = None if unique_keys else _orjson_or_none(raw)
    try:
        if payload is None:
            decoder = _UNIQUE_DECODER if unique_keys else _DECODER
            payload = decoder.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))  # json.loads, no decoder
    except RecursionError:
        raise InvalidArgument("request body is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidArgument("request body must be a JSON object")
    return payload, tail


_LONG_NUMBER = re.compile(rb"[0-9]{19}")
"""19 digits in a row: an integer orjson might read past 64 bits as a float (where Python's int is exact)."""


def _orjson_or_none(raw: bytes) -> Any:
    """The body as orjson reads it, or None where the stdlib's reading must decide: anything orjson refuses (the
    stdlib then accepts the same or says what is wrong, as it always has: UTF-16 and BOMs, lone surrogates, NaN,
    1e999, nesting past 1,024) and bodies with a number of 19 digits or more. Elsewhere the two read the same
    values, and orjson in a fifth of the time."""
    if _LONG_NUMBER.search(raw) is not None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259); Python's parser would accept them."""
    raise ValueError(f"{name} is not valid JSON; send finite numbers")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise DuplicateKeyError
    return obj


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_UNIQUE_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique)


def _params(item: dict[str, Any]) -> dict[str, Any]:
    """An object's `parameters`, which must be an object when present."""
    params = item.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidArgument(f"'parameters' must be an object, got {type(params).__name__}")
    return params


def decode_inputs(payload: dict[str, Any], tail: memoryview) -> list[InferTensor]:
    """The `inputs` of a v2 request; inputs with `binary_data_size` consume the binary tail in order."""
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgument("'inputs' must be a non-empty list of tensors")
    tensors, offset = [], 0
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidArgument("each input needs a 'name', 'shape', 'datatype' and 'data'")
        name = item["name"]
        for key in ("shape", "datatype"):
            if key not in item:
                raise InvalidArgument(f"input {name!r}: missing {key!r}")
        size = _params(item).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(tail):
                raise InvalidArgument(
                    f"input {name!r}: binary_data_size {size!r} exceeds the {len(tail) - offset} binary bytes left"
                )
            tensors.append(decode_binary(name, item["datatype"], item["shape"], tail[offset : offset + size]))
            offset += size
        elif "data" in item:
            tensors.append(decode_json(name, item["datatype"], item["shape"], item["data"]))
        else:
            raise InvalidArgument(f"input {name!r}: needs 'data' or parameters.binary_data_size")
    if offset != len(tail):
        raise InvalidArgument(f"{len(tail) - offset} binary bytes after the last binary input")
    return tensors


def requested_outputs(payload: dict[str, Any]) -> tuple[list[str] | None, set[str], bool]:
    """(names requested or None for all, names wanted as binary, default binary flag)."""
    binary_default = bool(_params(payload).get("binary_data_output", False))
    outputs = payload.get("outputs")
    if outputs is None:
        return None, set(), binary_default
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidArgument("'outputs' must be a list of {\"name\": ...} objects")
    binary = {o["name"] for o in outputs if _params(o).get("binary_data", binary_default)}
    return [o["name"] for o in outputs], binary, binary_default


def encode_response(
    head: dict[str, Any],
    outputs: list[InferTensor],
    binary: set[str],
    binary_default: bool,
    requested: list[str] | None,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header length."""
    entries, blobs = [], []
    for tensor in outputs:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        as_binary = tensor.name in binary or (requested is None and binary_default)
        if as_binary:
            blob = encode_binary(tensor)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = encode_json_data(tensor)
        entries.append(entry)
    header = dumps_arrays({**head, "outputs": entries})
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def metadata_json(meta: ModelMetadata) -> dict[str, Any]:
    """v2 model metadata body."""

    def tensors(items: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

    return {
        "name": meta.name,
        "versions": list(meta.versions),
        "platform": meta.platform,
        "inputs": tensors(meta.inputs),
        "outputs": tensors(meta.outputs),
    }
