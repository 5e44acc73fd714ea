"""v2 gRPC messages <-> core objects: ModelInferRequest inputs (raw or typed contents), responses, metadata."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from contract._generated import twinserve_kserve_pb2 as pb
from gateway.core import InferResult
from gateway.errors import InvalidArgument
from gateway.metadata import ModelMetadata
from gateway.tensors import V2_TO_NUMPY, InferTensor, check_shape, decode_binary, encode_binary

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def decode_request(request: pb.ModelInferRequest) -> list[InferTensor]:
    """Inputs from `raw_input_contents` (one per input, in order) or the typed `contents`."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; must be equal")
    tensors = []
    for i, item in enumerate(request.inputs):
        shape = check_shape(item.name, list(item.shape))  # proto dims are int64: negatives must be refused here
        if raw:
            tensors.append(decode_binary(item.name, item.datatype, shape, raw[i]))
            continue
        field = CONTENTS_FIELD.get(item.datatype)
        if field is None:
            raise InvalidArgument(f"input {item.name!r}: datatype {item.datatype!r} needs raw_input_contents")
        values = list(getattr(item.contents, field))
        count = math.prod(shape)  # exact: np.prod would wrap around on huge dims
        if len(values) != count:
            raise InvalidArgument(
                f"input {item.name!r}: shape {shape} needs {count} elements, contents.{field} has {len(values)}"
            )
        array = np.empty(count, dtype=object) if item.datatype == "BYTES" else None
        if array is not None:
            array[:] = values
        else:
            array = np.asarray(values, dtype=V2_TO_NUMPY[item.datatype])
        tensors.append(InferTensor(item.name, item.datatype, shape, array.reshape(shape)))
    return tensors


def requested_outputs(request: pb.ModelInferRequest) -> list[str] | None:
    """The output names asked for (None: all)."""
    return [o.name for o in request.outputs] or None


def encode_response(result: InferResult, echo_id: str) -> pb.ModelInferResponse:
    """A ModelInferResponse with every output as `raw_output_contents`, echoing the request's `id`."""
    response = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=echo_id)
    for tensor in result.outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        response.raw_output_contents.append(encode_binary(tensor))
    return response


def metadata_response(meta: ModelMetadata) -> pb.ModelMetadataResponse:
    """A ModelMetadataResponse."""
    tm = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=meta.name,
        versions=list(meta.versions),
        platform=meta.platform,
        inputs=[tm(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in meta.inputs],
        outputs=[tm(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in meta.outputs],
    )


class Unparseable:
    """A request whose bytes are not a valid message (e.g. invalid UTF-8 in a string): the handler says 400."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


def parser(message: Any) -> Callable[[bytes], Any]:
    """FromString that hands a decode failure to the handler (gRPC itself would answer INTERNAL)."""

    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except DecodeError:
            return Unparseable(message.DESCRIPTOR.name)

    return parse
