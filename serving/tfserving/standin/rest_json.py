"""TF Serving's JSON for :predict: row (`instances` -> `predictions`), columnar (`inputs` -> `outputs`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.tfserving.standin.errors import InvalidArgumentError
from serving.tfserving.standin.servables import Servable, Signature, Tensors, TensorSpec

# JSON numbers become numpy int or float arrays; which of those each tensor dtype accepts.
_ACCEPTED_KINDS = {"f": "iuf", "c": "iuf", "i": "iu", "u": "iu", "b": "b"}


@dataclass(frozen=True)
class PredictBody:
    """A decoded :predict body."""

    signature_name: str
    inputs: Tensors
    row_format: bool


def decode_object(body: bytes) -> tuple[dict[str, Any], str]:
    """Parse a request body that must be a JSON object; return it and its `signature_name` ("" if absent)."""
    if not body.strip():
        raise InvalidArgumentError("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgumentError(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError(f"JSON Parse error: body must be a JSON object, not {type(doc).__name__}")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise InvalidArgumentError("'signature_name' key must be a string value.")
    return doc, signature_name


def decode_predict(body: bytes, servable: Servable) -> PredictBody:
    """Parse a :predict body against the servable's signature; InvalidArgumentError names what is wrong."""
    doc, signature_name = decode_object(body)
    sig = servable.signature(signature_name)
    if ("instances" in doc) == ("inputs" in doc):
        if "instances" in doc:
            raise InvalidArgumentError("Not both 'instances' and 'inputs' can be specified")
        raise InvalidArgumentError("Missing 'inputs' or 'instances' key")
    if "instances" in doc:
        return PredictBody(signature_name, _rows(doc["instances"], sig), row_format=True)
    return PredictBody(signature_name, _columns(doc["inputs"], sig), row_format=False)


def _rows(instances: Any, sig: Signature) -> Tensors:
    if not isinstance(instances, list) or not instances:
        raise InvalidArgumentError("'instances' must be a non-empty JSON list, one entry per instance")
    names = list(sig.inputs)
    objects = [isinstance(i, dict) for i in instances]
    if any(objects) and not all(objects):
        raise InvalidArgumentError("'instances' mixes JSON objects and plain values")
    if all(objects):
        for n, inst in enumerate(instances):
            if set(inst) != set(names):
                raise InvalidArgumentError(
                    f"instance {n} has keys {sorted(inst)} but signature {sig.name} expects {names}"
                )
        return {name: _array([inst[name] for inst in instances], sig.inputs[name]) for name in names}
    if len(names) != 1:
        raise InvalidArgumentError(
            f"signature {sig.name} has inputs {names}: each instance must be an object keyed by them"
        )
    return {names[0]: _array(instances, sig.inputs[names[0]])}


def _columns(inputs: Any, sig: Signature) -> Tensors:
    names = list(sig.inputs)
    if isinstance(inputs, dict):
        if set(inputs) != set(names):
            raise InvalidArgumentError(f"'inputs' has keys {sorted(inputs)}; {sig.name} expects {names}")
        return {name: _array(inputs[name], sig.inputs[name]) for name in names}
    if len(names) != 1:
        raise InvalidArgumentError(f"signature {sig.name} has inputs {names}: 'inputs' must be keyed by them")
    return {names[0]: _array(inputs, sig.inputs[names[0]])}


def _array(value: Any, spec: TensorSpec) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as e:  # numpy refuses ragged nesting
        raise InvalidArgumentError(f"input '{spec.name}': JSON array is ragged or malformed ({e})") from None
    accepted = _ACCEPTED_KINDS.get(spec.dtype.kind)
    if accepted is None:
        raise InvalidArgumentError(
            f"input '{spec.name}': dtype {spec.dtype_name} is not supported over JSON by the stand-in"
        )
    if array.dtype.kind not in accepted:
        kinds = {"U": "string", "O": "null, object or mixed", "b": "bool"}
        got = kinds.get(array.dtype.kind, str(array.dtype))
        raise InvalidArgumentError(
            f"input '{spec.name}': JSON values of type {got} are not of expected type {spec.dtype_name}"
        )
    return array.astype(spec.dtype, copy=False)


def encode_predict(outputs: Tensors, row_format: bool) -> bytes:
    """Encode outputs: a list of per-instance values (dicts if several outputs), or a columnar object."""
    lists = {name: value.tolist() for name, value in outputs.items()}
    if not row_format:
        doc: dict[str, Any] = {"outputs": next(iter(lists.values())) if len(lists) == 1 else lists}
        return json.dumps(doc).encode()
    if len(lists) == 1:
        return json.dumps({"predictions": next(iter(lists.values()))}).encode()
    sizes = {name: len(v) if isinstance(v, list) else None for name, v in lists.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise InvalidArgumentError(f"outputs have no common batch size for the row format: {sizes}")
    n = next(iter(sizes.values())) or 0
    predictions = [{name: lists[name][i] for name in lists} for i in range(n)]
    return json.dumps({"predictions": predictions}).encode()
