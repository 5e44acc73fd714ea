"""The stand-in's gRPC API, driven by the official tensorflow-serving-api stubs as an independent peer."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import wrappers_pb2
from standin_support import StandIn, digits_batch, expected_logits
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.tfserving.standin import MAX_MESSAGE_BYTES, METADATA_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def channel(standin: StandIn) -> Iterator[grpc.Channel]:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(standin.grpc_target, options=options) as ch:
        yield ch


@pytest.fixture(scope="module")
def predictions(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request(
    model: str, x: np.ndarray | None = None, version: int | None = None, label: str = "", signature: str = ""
) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if label:  # version and version_label are a oneof: setting one clears the other
        req.model_spec.version_label = label
    req.inputs["input"].CopyFrom(tf.make_tensor_proto(digits_batch(2) if x is None else x))
    return req


def test_predict_answers_tensors_and_fills_the_model_spec(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    x = digits_batch(3)
    response = predictions.Predict(request("digits", x), timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == ("digits", 2)
    assert response.model_spec.signature_name == "serving_default"
    assert sorted(response.outputs) == ["logits", "probabilities"]
    logits = tf.make_ndarray(response.outputs["logits"])
    np.testing.assert_allclose(logits, expected_logits(2, x), rtol=1e-5, atol=1e-5)
    assert tf.make_ndarray(response.outputs["probabilities"]).shape == (3, 10)


@pytest.mark.parametrize(
    ("version", "label", "served"), [(1, "", 1), (2, "", 2), (None, "stable", 1), (None, "canary", 2)]
)
def test_version_and_version_label_pick_the_version(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    version: int | None,
    label: str,
    served: int,
) -> None:
    x = digits_batch(1)
    response = predictions.Predict(request("tiny_all", x, version=version, label=label), timeout=30)
    assert response.model_spec.version.value == served
    logits = tf.make_ndarray(response.outputs["logits"])
    np.testing.assert_allclose(logits, expected_logits(served, x), rtol=1e-5)


def test_output_filter_returns_only_the_asked_outputs(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    req = request("digits")
    req.output_filter.append("probabilities")
    assert list(predictions.Predict(req, timeout=30).outputs) == ["probabilities"]


def test_a_batch_above_grpcs_default_4_mib_limit_goes_through(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    x = digits_batch(20_000)  # 5 MiB of float32
    response = predictions.Predict(request("digits", x), timeout=60)
    assert tf.make_ndarray(response.outputs["logits"]).shape == (20_000, 10)


def _bad(kind: str) -> predict_pb2.PredictRequest:
    req = request("digits")
    if kind == "dtype":
        req.inputs["input"].CopyFrom(tf.make_tensor_proto(digits_batch(2).astype(np.float64)))
    elif kind == "shape":
        req.inputs["input"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 64), np.float32)))
    elif kind == "name":
        req.inputs["image"].CopyFrom(req.inputs.pop("input"))
    elif kind == "filter":
        req.output_filter.append("embedding")
    elif kind == "signature":
        req.model_spec.signature_name = "nope"
    elif kind == "corrupt":
        req.inputs["input"].tensor_content = b"\x00" * 7  # not a whole number of float32s
    return req


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dtype", "has dtype float64 but signature serving_default expects float32"),
        ("shape", "has shape [2, 64] but signature serving_default expects [-1, 1, 8, 8]"),
        ("name", "missing ['input'], unexpected ['image']"),
        ("filter", "output tensor alias not found in signature: embedding"),
        ("signature", 'Serving signature name: "nope" not found'),
        ("corrupt", "input 'input'"),
    ],
)
def test_bad_requests_are_invalid_argument_with_the_reason(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub, kind: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        predictions.Predict(_bad(kind), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


@pytest.mark.parametrize(
    ("req", "code", "message"),
    [
        (request("nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (request("digits", version=1), grpc.StatusCode.NOT_FOUND, "Specific(digits, 1)"),
        (
            request("tiny_all", label="beta"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: beta",
        ),
    ],
)
def test_unknown_models_versions_and_labels(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    req: predict_pb2.PredictRequest,
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        predictions.Predict(req, timeout=30)
    assert info.value.code() == code
    assert message in info.value.details()


def test_metadata_packs_the_signature_def_map_and_a_stand_in_note(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "digits"
    response = predictions.GetModelMetadata(req, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == ("digits", 2)
    sig_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_defs)
    serving = sig_defs.signature_def["serving_default"]
    assert [d.size for d in serving.inputs["input"].tensor_shape.dim] == [-1, 1, 8, 8]
    assert serving.inputs["input"].dtype == tf.float32.as_datatype_enum
    assert sorted(serving.outputs) == ["logits", "probabilities"]
    note = wrappers_pb2.StringValue()
    assert response.metadata[METADATA_KEY].Unpack(note)
    assert "STAND-IN" in note.value


@pytest.mark.parametrize(
    ("fields", "message"), [([], "at least one metadata_field"), (["graph"], "graph is not supported")]
)
def test_metadata_needs_signature_def(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub, fields: list[str], message: str
) -> None:
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    req.model_spec.name = "digits"
    with pytest.raises(grpc.RpcError) as info:
        predictions.GetModelMetadata(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


def test_model_status_lists_available_versions(channel: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "tiny_all"
    response = stub.GetModelStatus(req, timeout=30)
    assert [s.version for s in response.model_version_status] == [2, 1]
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert {s.state for s in response.model_version_status} == {available}
    assert {s.status.error_code for s in response.model_version_status} == {0}  # tensorflow.error.OK
    req.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelStatus(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_what_the_stand_in_does_not_implement_says_so(
    channel: grpc.Channel, predictions: prediction_service_pb2_grpc.PredictionServiceStub
) -> None:
    calls = [
        lambda: predictions.MultiInference(inference_pb2.MultiInferenceRequest(), timeout=30),
        lambda: model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(), timeout=30
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "stand-in" in info.value.details()
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "digits"
    with pytest.raises(grpc.RpcError) as info:
        predictions.Classify(classify, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expected classify signature" in info.value.details()
