"""One model, two stacks, four paths: the same digits samples give the same answers everywhere.

TorchServe REST and gRPC (through our own wire-compatible .proto), the TF Serving stand-in's REST and
gRPC (through the official tensorflow-serving-api stubs). Plus bad input as users send it.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from contract._generated import twinserve_torchserve_pb2 as ts_pb2

pytestmark = pytest.mark.e2e
PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TIMEOUT = 30.0
COUNT = 32  # samples per path; each runs as one batched request


@pytest.fixture(scope="module")
def digits(artifacts: Path) -> dict[str, np.ndarray]:
    data = np.load(artifacts / "samples" / "digits.npz")
    return {k: data[k][:COUNT] for k in ("inputs", "logits", "labels")}


def torchserve_rest(native_stack, body: bytes, content_type: str = "application/json", model: str = "digits"):
    url = f"http://127.0.0.1:{native_stack.ports.ts_inference}/predictions/{model}"
    headers = {"Authorization": f"Bearer {native_stack.token()}", "Content-Type": content_type}
    return requests.post(url, data=body, headers=headers, timeout=TIMEOUT)


def torchserve_grpc(native_stack, inputs: dict[str, bytes], model: str = "digits") -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{native_stack.ports.ts_grpc_inference}") as channel:
        call = channel.unary_unary(
            PREDICTIONS,
            request_serializer=ts_pb2.PredictionsRequest.SerializeToString,
            response_deserializer=ts_pb2.PredictionResponse.FromString,
        )
        request = ts_pb2.PredictionsRequest(model_name=model, input=inputs)
        metadata = (("authorization", f"Bearer {native_stack.token()}"),)
        return call(request, metadata=metadata, timeout=TIMEOUT).prediction


def standin_grpc(native_stack, batch: np.ndarray, model: str = "digits") -> dict[str, np.ndarray]:
    with grpc.insecure_channel(f"127.0.0.1:{native_stack.ports.tf_grpc}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = "serving_default"
        request.inputs["input"].CopyFrom(tf.make_tensor_proto(batch))
        response = stub.Predict(request, timeout=TIMEOUT)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def test_four_paths_agree_with_each_other_and_the_reference(native_stack, digits) -> None:
    inputs = digits["inputs"]
    body = json.dumps({"instances": inputs.tolist()}).encode()
    rest = torchserve_rest(native_stack, body)
    assert rest.status_code == 200, rest.text
    ts_rest = np.array([row["logits"] for row in rest.json()["predictions"]], dtype=np.float32)

    raw = torchserve_grpc(native_stack, {"input": inputs.astype("<f4").tobytes()})
    ts_grpc = np.asarray(json.loads(raw)["outputs"]["logits"], dtype=np.float32)

    url = f"http://127.0.0.1:{native_stack.ports.tf_rest}/v1/models/digits:predict"
    tf_rest_answer = requests.post(url, data=body, timeout=TIMEOUT)
    assert tf_rest_answer.status_code == 200, tf_rest_answer.text
    tf_rest = np.array([row["logits"] for row in tf_rest_answer.json()["predictions"]], dtype=np.float32)

    tf_grpc = standin_grpc(native_stack, inputs)["logits"]

    paths = {"torchserve-rest": ts_rest, "torchserve-grpc": ts_grpc, "standin-rest": tf_rest, "standin-grpc": tf_grpc}
    for name, logits in paths.items():
        assert logits.shape == (COUNT, 10), name
        np.testing.assert_allclose(logits, digits["logits"], atol=1e-4, err_msg=name)
        assert (logits.argmax(1) == digits["logits"].argmax(1)).all(), name
    assert np.mean(ts_rest.argmax(1) == digits["labels"]) >= 0.9


def test_torchserve_grpc_json_body_matches_rest_form(native_stack, digits) -> None:
    body = json.dumps({"instances": digits["inputs"][:2].tolist()}).encode()
    answer = json.loads(torchserve_grpc(native_stack, {"body": body}))
    assert [len(row["probabilities"]) for row in answer["predictions"]] == [10, 10]


def test_torchserve_needs_the_token(native_stack) -> None:
    url = f"http://127.0.0.1:{native_stack.ports.ts_inference}/ping"
    assert requests.get(url, timeout=TIMEOUT).status_code in (400, 401)  # 0.12 answers 400 InvalidKeyException
    headers = {"Authorization": f"Bearer {native_stack.token()}"}
    assert requests.get(url, headers=headers, timeout=TIMEOUT).json()["status"] == "Healthy"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"instances": [[1, 2]]}', "application/json", "expected [-1, 1, 8, 8]"),
        (b'{"instances": [[[1, 2', "application/json", "malformed JSON"),
        (b'{"instances": "abc"}', "application/json", "'instances' must be a non-empty list"),
        (b'{"other": 1}', "application/json", '"instances" or "inputs"'),
        (b"abc", "application/octet-stream", "not a whole number of FP32 instances"),
        (b'{"instances": []}', "application/json", "'instances' must be a non-empty list"),
        (b"instances=1", "application/x-www-form-urlencoded", "Content-Type: application/json"),
    ],
)
def test_torchserve_rest_bad_input_is_a_400_naming_the_problem(native_stack, body, content_type, message) -> None:
    answer = torchserve_rest(native_stack, body, content_type)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_torchserve_bad_input_in_a_batch_does_not_fail_its_neighbours(native_stack, digits) -> None:
    from concurrent.futures import ThreadPoolExecutor

    good = json.dumps({"instances": digits["inputs"][:1].tolist()}).encode()
    bad = b'{"instances": [[0]]}'
    with ThreadPoolExecutor(8) as pool:  # concurrent, so TorchServe may batch good and bad together
        answers = list(pool.map(lambda b: torchserve_rest(native_stack, b), [good, bad] * 8))
    assert [a.status_code for a in answers] == [200, 400] * 8


def test_torchserve_unknown_model_and_version_are_404(native_stack) -> None:
    assert torchserve_rest(native_stack, b"{}", model="nope").status_code == 404
    assert torchserve_rest(native_stack, b"{}", model="digits/9.0").status_code == 404


def test_torchserve_grpc_bad_input_answers_the_error_json(native_stack) -> None:
    # TorchServe 0.12 drops a handler's per-request status on gRPC: the call is OK and the body is the
    # handler's error JSON, so clients (the gateway) must read the body, not only the status code.
    answer = json.loads(torchserve_grpc(native_stack, {"input": b"abc"}))
    assert answer["code"] == 400 and answer["type"] == "InvalidInput"
    assert "not a whole number of FP32 instances" in answer["message"]


def test_torchserve_grpc_rejects_a_wrong_token_and_unknown_model(native_stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{native_stack.ports.ts_grpc_inference}") as channel:
        call = channel.unary_unary(
            PREDICTIONS,
            request_serializer=ts_pb2.PredictionsRequest.SerializeToString,
            response_deserializer=ts_pb2.PredictionResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as raised:
            call(ts_pb2.PredictionsRequest(model_name="digits"), metadata=(("authorization", "Bearer x"),), timeout=10)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as raised:
        torchserve_grpc(native_stack, {"input": b""}, model="nope")
    assert "Model not found" in (raised.value.details() or "")


def test_standin_bad_input_is_a_400_with_tf_serving_error_json(native_stack) -> None:
    url = f"http://127.0.0.1:{native_stack.ports.tf_rest}/v1/models/digits:predict"
    answer = requests.post(url, data=b'{"instances": [[1, 2]]}', timeout=TIMEOUT)
    assert answer.status_code == 400
    assert "error" in answer.json()
    with pytest.raises(grpc.RpcError) as raised:
        standin_grpc(native_stack, np.zeros((1, 3, 8, 8), np.float32))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_resnet18_answers_on_both_stacks_alike(native_stack, artifacts: Path) -> None:
    samples = np.load(artifacts / "samples" / "resnet18.npz")
    batch = samples["inputs"][:2]
    ts = json.loads(torchserve_grpc(native_stack, {"input": batch.astype("<f4").tobytes()}, model="resnet18"))
    ts_logits = np.asarray(ts["outputs"]["logits"], dtype=np.float32)
    tf_logits = standin_grpc(native_stack, batch, model="resnet18")["logits"]
    np.testing.assert_allclose(ts_logits, samples["logits"][:2], atol=1e-4)
    np.testing.assert_allclose(tf_logits, samples["logits"][:2], atol=1e-4)
