"""Both backends read JSON answers with the signature's datatypes (JSON numbers carry none), name a lone unnamed
output after the signature's one output, and probe each input with its own datatype."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.backends.base import probe_inputs
from gateway.backends.tfserving import output_from_json
from gateway.backends.torchserve import _parse_outputs
from gateway.errors import UpstreamError
from gateway.metadata import ModelMetadata, TensorMeta

DECLARED = ModelMetadata(
    "m",
    ("1",),
    "declared",
    (TensorMeta("ids", "INT64", (-1, 3)), TensorMeta("mask", "BOOL", (-1, -1)), TensorMeta("x", "FP16", (-1, 2))),
    (TensorMeta("score", "FP32", (-1, 2)), TensorMeta("count", "INT64", (-1, 1)), TensorMeta("keep", "BOOL", (-1, 1))),
)


def test_columns_take_the_declared_datatypes() -> None:
    answer = {"outputs": {"score": [[0.5, 1.5]], "count": [[7]], "keep": [[True]]}}
    got = {t.name: t for t in _parse_outputs(answer, DECLARED)}
    assert {n: t.datatype for n, t in got.items()} == {"score": "FP32", "count": "INT64", "keep": "BOOL"}
    assert got["count"].data.dtype == np.int64 and got["count"].data.tolist() == [[7]]
    assert got["keep"].data.dtype == np.bool_


def test_rows_and_a_bare_single_output_are_named() -> None:
    one = ModelMetadata("m", ("1",), "declared", DECLARED.inputs, (TensorMeta("count", "INT64", (-1, 1)),))
    for answer in ({"outputs": [[3], [4]]}, {"predictions": [[3], [4]]}):
        [tensor] = _parse_outputs(answer, one)
        assert (tensor.name, tensor.datatype, tensor.data.tolist()) == ("count", "INT64", [[3], [4]])


def test_probe_inputs_have_their_own_datatypes_and_concrete_shapes() -> None:
    probes = {t.name: t for t in probe_inputs(DECLARED)}
    assert {n: (t.datatype, t.data.dtype.name, t.shape) for n, t in probes.items()} == {
        "ids": ("INT64", "int64", [1, 3]),
        "mask": ("BOOL", "bool", [1, 1]),
        "x": ("FP16", "float16", [1, 2]),
    }


def test_tf_json_float_outputs_keep_tf_s_numbers_others_become_arrays() -> None:
    """TF's REST answer: a float output keeps the numbers TF wrote (no array unless asked for), with its nesting as
    the shape; integer outputs are arrays of their datatype; a ragged answer is the upstream's fault, not the
    client's."""
    score = output_from_json("score", "FP32", [[0.10000000149011612, 2], [3.5, -1.0]])
    assert score.shape == [2, 2] and score.flat == [0.10000000149011612, 2.0, 3.5, -1.0]
    assert score.data.dtype == np.float32 and score.data[0, 0] == np.float32(0.1)
    count = output_from_json("count", "INT64", [[7], [8]])
    assert count.flat is None and count.data.dtype == np.int64 and count.shape == [2, 1]
    with pytest.raises(UpstreamError, match="output 'score' is not a rectangular array"):
        output_from_json("score", "FP32", [[1.0], [1.0, 2.0]])
