"""gRPC bodies (generated stubs of contract/) are wire-compatible with the official messages; answers are checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tritonclient.grpc import service_pb2

from loadtest.samples import Reference
from loadtest.targets import Target, expand, parse_target
from loadtest.users import codecs
from loadtest.users.codecs import TS_PREDICTIONS, V2_INFER, build_call, build_calls, is_right, parse_logits

RNG = np.random.default_rng(0)
X = RNG.random((2, 1, 8, 8), dtype=np.float32)
LOGITS = RNG.standard_normal((2, 10)).astype(np.float32)


def _torchserve_messages() -> tuple[Any, Any]:
    """TorchServe's inference.proto messages, built from a descriptor: an independent protobuf encoder."""
    f = descriptor_pb2.FileDescriptorProto(
        name="ts_inference.proto", package="org.pytorch.serve.grpc.inference", syntax="proto3"
    )
    req = f.message_type.add(name="PredictionsRequest")
    entry = req.nested_type.add(name="InputEntry", options=descriptor_pb2.MessageOptions(map_entry=True))
    entry.field.add(name="key", number=1, type=9, label=1)
    entry.field.add(name="value", number=2, type=12, label=1)
    req.field.add(name="model_name", number=1, type=9, label=1)
    req.field.add(name="model_version", number=2, type=9, label=1)
    req.field.add(
        name="input",
        number=3,
        type=11,
        label=3,
        type_name=".org.pytorch.serve.grpc.inference.PredictionsRequest.InputEntry",
    )
    f.message_type.add(name="PredictionResponse").field.add(name="prediction", number=1, type=12, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("org.pytorch.serve.grpc.inference.PredictionsRequest")),
        get(pool.FindMessageTypeByName("org.pytorch.serve.grpc.inference.PredictionResponse")),
    )


def test_torchserve_messages_match_the_proto() -> None:
    request_cls, response_cls = _torchserve_messages()
    raw = X.tobytes()
    msg = request_cls.FromString(codecs.torchserve_predictions("digits", {"input": raw}, version="1"))
    assert (msg.model_name, msg.model_version, dict(msg.input)) == ("digits", "1", {"input": raw})
    answer = json.dumps({"outputs": {"logits": LOGITS.tolist()}}).encode()
    assert codecs.torchserve_prediction(response_cls(prediction=answer).SerializeToString()) == answer


def test_tfserving_messages_match_the_official_stubs() -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest.FromString(codecs.tfserving_predict("digits", {"input": X}))
    assert req.model_spec.name == "digits" and req.model_spec.signature_name == "serving_default"
    assert np.array_equal(tf.make_ndarray(req.inputs["input"]), X)
    resp = predict_pb2.PredictResponse()
    resp.outputs["logits"].CopyFrom(tf.make_tensor_proto(LOGITS))  # tensor_content
    resp.outputs["probabilities"].dtype = 1
    resp.outputs["probabilities"].tensor_shape.dim.add(size=2)
    resp.outputs["probabilities"].float_val.extend([0.25, 0.75])  # float_val, packed
    out = codecs.tfserving_outputs(resp.SerializeToString())
    assert np.array_equal(out["logits"], LOGITS)
    assert out["probabilities"].tolist() == [0.25, 0.75]


def test_v2_grpc_request_and_both_answer_forms() -> None:
    t = Target("torchserve", "grpc", "gateway", "digits")
    call = build_call(t, X, LOGITS)
    assert call.path == V2_INFER and call.headers == {"backend": "torchserve"}
    req = service_pb2.ModelInferRequest.FromString(call.body)
    assert req.model_name == "digits" and list(req.inputs[0].shape) == [2, 1, 8, 8]
    assert np.array_equal(np.frombuffer(req.raw_input_contents[0], "<f4").reshape(X.shape), X)
    raw = service_pb2.ModelInferResponse(model_name="digits")
    raw.outputs.add(name="probabilities", datatype="FP32", shape=[2, 10])
    raw.outputs.add(name="logits", datatype="FP32", shape=[2, 10])
    raw.raw_output_contents.extend([b"\0" * 80, LOGITS.tobytes()])
    assert np.array_equal(parse_logits(t, raw.SerializeToString()), LOGITS)
    typed = service_pb2.ModelInferResponse()
    o = typed.outputs.add(name="logits", datatype="FP32", shape=[2, 10])
    o.contents.fp32_contents.extend(LOGITS.ravel().tolist())
    assert np.array_equal(parse_logits(t, typed.SerializeToString()), LOGITS)


@pytest.mark.parametrize("spec", ["torchserve-rest-direct:digits", "tfserving-rest-direct:digits"])
def test_rest_row_and_columnar_answers(spec: str) -> None:
    t = parse_target(spec)
    call = build_call(t, X, LOGITS)
    assert json.loads(call.body)["instances"] == X.tolist()
    rows = {"predictions": [{"logits": r, "probabilities": r} for r in LOGITS.tolist()]}
    assert np.array_equal(parse_logits(t, json.dumps(rows).encode()), LOGITS)
    cols = {"outputs": {"logits": LOGITS.tolist(), "probabilities": LOGITS.tolist()}}
    assert np.array_equal(parse_logits(t, json.dumps(cols).encode()), LOGITS)


def test_gateway_rest_uses_v2_and_the_backend_header() -> None:
    t = parse_target("tfserving-rest-gateway:digits")
    call = build_call(t, X, LOGITS)
    assert call.path == "/v2/models/digits/infer" and call.headers["X-Backend"] == "tfserving"
    tensor = json.loads(call.body)["inputs"][0]
    assert tensor["shape"] == [2, 1, 8, 8] and tensor["datatype"] == "FP32" and len(tensor["data"]) == 128
    answer = {"outputs": [{"name": "logits", "shape": [2, 10], "datatype": "FP32", "data": LOGITS.ravel().tolist()}]}
    assert np.array_equal(parse_logits(t, json.dumps(answer).encode()), LOGITS)


def test_answer_check_top1_and_tolerance() -> None:
    assert is_right(LOGITS + 9e-4, LOGITS)
    assert not is_right(LOGITS + 2e-3, LOGITS)
    swapped = LOGITS.copy()
    swapped[0] = LOGITS[0][::-1]
    assert not is_right(swapped, LOGITS)
    assert not is_right(LOGITS[:1], LOGITS)


def test_calls_cycle_through_samples_in_batches() -> None:
    ref = Reference("digits", RNG.random((5, 1, 8, 8), dtype=np.float32), RNG.random((5, 10), dtype=np.float32))
    calls = build_calls(Target("torchserve", "grpc", "direct", "digits"), ref, batch=2)
    assert len(calls) == 2 and calls[0].path == TS_PREDICTIONS
    assert np.array_equal(calls[1].expected, ref.logits[[2, 3]])


def test_targets_parse_and_expand() -> None:
    assert len(expand(["all"], ["digits", "resnet18"])) == 16
    assert [t.id for t in expand(["torchserve-*-direct"], ["digits"])] == [
        "torchserve-rest-direct:digits",
        "torchserve-grpc-direct:digits",
    ]
    t = parse_target("tfserving-grpc-gateway:digits@18001")
    assert (t.port, t.spec, t.address) == (18001, "tfserving-grpc-gateway:digits@18001", "127.0.0.1:18001")
    assert parse_target("tfserving-grpc-direct:digits").port == 8500
    with pytest.raises(ValueError):
        parse_target("tfserving-http-direct:digits")


def test_each_target_carries_its_own_credential(tmp_path: Path) -> None:
    from loadtest.targets import Target, bearer_for

    key_file = tmp_path / "torchserve" / "key_file.json"
    key_file.parent.mkdir()
    key_file.write_text('{"inference": {"key": "ts-key"}, "management": {"key": "m"}}', encoding="utf-8")
    direct = Target("torchserve", "grpc", "direct", "digits")
    via_gateway = Target("torchserve", "rest", "gateway", "digits")
    assert bearer_for(direct, key_file) == "ts-key"
    assert bearer_for(via_gateway, key_file) == ""  # a loopback gateway asks for no key
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "api_key").write_text("gw-key\n", encoding="utf-8")  # make up beyond loopback
    assert bearer_for(via_gateway, key_file) == "gw-key"
    assert bearer_for(Target("tfserving", "rest", "direct", "digits"), key_file) == ""
