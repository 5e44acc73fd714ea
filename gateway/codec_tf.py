"""TF Serving's REST predict bodies <-> core objects: `instances` (row format) or `inputs` (columnar format) in,
`predictions` or `outputs` back in the same format."""

from __future__ import annotations

import json
from typing import Any, Literal

from gateway.codec_v2 import DuplicateKeyError, parse_body
from gateway.errors import InvalidArgument
from gateway.metadata import ModelMetadata
from gateway.tensors import InferTensor, decode_nested, dumps_arrays

Form = Literal["row", "columnar"]


def decode_predict(payload: dict[str, Any], meta: ModelMetadata) -> tuple[list[InferTensor], Form]:
    """The inputs of a predict body, checked against the model's inputs, and the format the answer must use."""
    spec = {t.name: t for t in meta.inputs}
    form: Form
    if "instances" in payload:
        rows, form = payload["instances"], "row"
        if not isinstance(rows, list) or not rows:
            raise InvalidArgument("'instances' must be a non-empty list")
        try:
            columns = {n: [r[n] for r in rows] for n in spec} if isinstance(rows[0], dict) else {next(iter(spec)): rows}
        except (KeyError, TypeError):
            raise InvalidArgument(f"every instance must be an object with the inputs {sorted(spec)}") from None
    elif "inputs" in payload:
        form = "columnar"
        columns = payload["inputs"] if isinstance(payload["inputs"], dict) else {next(iter(spec)): payload["inputs"]}
    else:
        raise InvalidArgument("body needs 'instances' or 'inputs'")
    inputs = []
    for name, value in columns.items():
        if name not in spec:
            raise InvalidArgument(f"unknown input {name!r}; expected {sorted(spec)}")
        inputs.append(decode_nested(name, spec[name].datatype, value))
    return inputs, form


def parse_predict(body: bytes) -> tuple[dict[str, Any], bool]:
    """The JSON object of a predict body, and whether TF Serving reads the very values we parse from these bytes
    (UTF-8 without a BOM, no key named twice): only then may the bytes go on unchanged once those values passed."""
    if json.detect_encoding(body) == "utf-8":
        try:
            return parse_body(body, None, unique_keys=True)[0], True
        except DuplicateKeyError:
            pass
    return parse_body(body, None)[0], False


def forwardable(payload: dict[str, Any], meta: ModelMetadata) -> bool:
    """Whether TF Serving may answer a decoded (so validated) predict body itself: the body asks for nothing we did
    not check (only `instances` or `inputs`; no `signature_name`; instances name exactly the inputs; no BYTES,
    which TF's JSON spells as base64 objects) and TF's answer has the form encode_predict gives (its outputs by
    name: TF leaves a lone output unnamed, the gateway names it, so one-output models stay on the decoded path)."""
    if len(payload) != 1 or len(meta.outputs) < 2 or any(t.datatype == "BYTES" for t in meta.inputs):
        return False
    rows = payload.get("instances")
    if rows is None:
        return "inputs" in payload
    return not isinstance(rows[0], dict) or all(len(row) == len(meta.inputs) for row in rows)


def encode_predict(outputs: list[InferTensor], form: Form) -> bytes:
    """`{"predictions": [{name: row, ...}, ...]}` for the row format, `{"outputs": {name: batch}}` for columnar."""
    columns = {t.name: t.data for t in outputs}
    body: dict[str, Any]
    if form == "row":
        names = list(columns)
        rows = zip(*(columns[n] for n in names), strict=True)
        body = {"predictions": [dict(zip(names, values, strict=True)) for values in rows]}
    else:
        body = {"outputs": columns}
    return dumps_arrays(body)
