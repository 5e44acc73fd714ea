"""Open Inference Protocol v2 requests: the JSON body (REST) and the ModelInfer message (gRPC), built one way.

Tensors go in as numpy arrays keyed by input name; the v2 datatype follows the array's dtype.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from contract._generated import twinserve_kserve_pb2

# numpy dtype -> v2 datatype name (the tensor data types of the KServe v2 protocol).
DATATYPES = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


def datatype(array: np.ndarray) -> str:
    """The v2 datatype of `array` (ValueError for a dtype v2 has no name for)."""
    try:
        return DATATYPES[array.dtype.newbyteorder("=")]
    except KeyError:
        names = sorted(set(DATATYPES.values()))
        raise ValueError(f"dtype {array.dtype} has no v2 datatype; use one of {names}") from None


def infer_json(inputs: Mapping[str, np.ndarray], outputs: tuple[str, ...] = ()) -> bytes:
    """A v2 REST inference body with every input as JSON data (row-major), optionally naming the outputs."""
    doc: dict[str, object] = {
        "inputs": [
            {"name": name, "shape": list(x.shape), "datatype": datatype(x), "data": x.ravel().tolist()}
            for name, x in inputs.items()
        ]
    }
    if outputs:
        doc["outputs"] = [{"name": name} for name in outputs]
    return json.dumps(doc).encode()


def model_infer_request(
    model: str, inputs: Mapping[str, np.ndarray], version: str = ""
) -> twinserve_kserve_pb2.ModelInferRequest:
    """A v2 gRPC ModelInfer request with every input as raw little-endian bytes (`raw_input_contents`)."""
    from contract._generated import twinserve_kserve_pb2 as kserve

    request = kserve.ModelInferRequest(model_name=model, model_version=version)
    for name, x in inputs.items():
        request.inputs.add(name=name, datatype=datatype(x), shape=list(x.shape))
        request.raw_input_contents.append(np.ascontiguousarray(x, x.dtype.newbyteorder("<")).tobytes())
    return request
