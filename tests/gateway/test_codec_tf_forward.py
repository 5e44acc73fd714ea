"""Which TF predict bodies may be forwarded as they are (codec_tf.parse_predict / forwardable)."""

from __future__ import annotations

import json

import pytest

from gateway.codec_tf import decode_predict, forwardable, parse_predict
from gateway.metadata import ModelMetadata, TensorMeta

ROW = [[[0.5] * 8] * 8]
IN = (TensorMeta("input", "FP32", (-1, 1, 8, 8)),)
TWO = (TensorMeta("logits", "FP32", (-1, 10)), TensorMeta("probabilities", "FP32", (-1, 10)))
DIGITS = ModelMetadata("digits", ("1",), "tf", IN, TWO)


def check(body: bytes, meta: ModelMetadata = DIGITS) -> bool:
    payload, same_bytes = parse_predict(body)
    decode_predict(payload, meta)  # forwardable is only asked about bodies that decoded
    return same_bytes and forwardable(payload, meta)


@pytest.mark.parametrize(
    "doc", [{"instances": [ROW]}, {"instances": [{"input": ROW}]}, {"inputs": [ROW]}, {"inputs": {"input": [ROW]}}]
)
def test_both_forms_forward(doc: dict[str, object]) -> None:
    assert check(json.dumps(doc).encode())


def test_what_tf_would_read_differently_does_not_forward() -> None:
    assert not check(json.dumps({"signature_name": "serving_default", "instances": [ROW]}).encode())
    assert not check(json.dumps({"instances": [{"input": ROW, "extra": 1}]}).encode())
    assert not check(b'{"instances": [[1]], "instances": ' + json.dumps([ROW]).encode() + b"}")
    assert not check("\ufeff".encode() + json.dumps({"instances": [ROW]}).encode())
    assert not check(json.dumps({"instances": [ROW]}).encode("utf-16"))


def test_one_output_or_bytes_inputs_do_not_forward() -> None:
    # TF leaves a lone output unnamed where the gateway names it; TF spells BYTES in JSON as base64 objects
    one = ModelMetadata("m", ("1",), "tf", IN, TWO[:1])
    assert not check(json.dumps({"instances": [ROW]}).encode(), one)
    text = ModelMetadata("t", ("1",), "tf", (TensorMeta("text", "BYTES", (-1,)),), TWO)
    assert not check(json.dumps({"instances": ["hello"]}).encode(), text)
