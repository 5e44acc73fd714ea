"""gRPC adapter with the official tritonclient stubs as the independent peer; error codes per protocol."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from gateway_harness import FaultBackend, fault_settings, serve
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from gateway import errors

X = np.arange(128, dtype=np.float32).reshape(2, 1, 8, 8)


@pytest.fixture
def gw(backends: dict[str, FaultBackend]):  # type: ignore[no-untyped-def]
    with serve(fault_settings(), backends) as running:
        yield running


def test_every_method_with_tritonclient(gw) -> None:  # type: ignore[no-untyped-def]
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    assert client.get_server_metadata().name == "twinserve-gateway"
    meta = client.get_model_metadata("digits")
    assert meta.inputs[0].name == "input" and list(meta.inputs[0].shape) == [-1, 1, 8, 8]
    inp = grpcclient.InferInput("input", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    result = client.infer("digits", [inp], headers={"backend": "tfserving"}, request_id="r1")
    np.testing.assert_allclose(result.as_numpy("logits"), X.reshape(2, -1)[:, :10] + 0.5)
    only = client.infer("digits", [inp], outputs=[grpcclient.InferRequestedOutput("probabilities")])
    assert only.as_numpy("logits") is None and only.as_numpy("probabilities").shape == (2, 10)


def test_typed_contents_and_trailing_metadata(gw) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="digits")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=[2, 1, 8, 8])
        tensor.contents.fp32_contents.extend(X.reshape(-1).tolist())
        response, call = stub.ModelInfer.with_call(request, metadata=[("x-request-id", "abc")])
        trailers = dict(call.trailing_metadata())
        assert trailers["x-backend"] == "torchserve" and trailers["x-request-id"] == "abc"
        assert trailers["server-timing"].startswith("gateway;dur=")
        logits = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 10)
        np.testing.assert_allclose(logits, X.reshape(2, -1)[:, :10])
        tensor.contents.fp32_contents.pop()
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "needs 128 elements" in info.value.details()


@pytest.mark.parametrize(
    ("model", "version", "shape", "code"),
    [
        ("nope", "", [2, 1, 8, 8], "StatusCode.NOT_FOUND"),
        ("digits", "9", [2, 1, 8, 8], "StatusCode.NOT_FOUND"),
        ("digits", "", [2, 8, 8, 1], "StatusCode.INVALID_ARGUMENT"),
    ],
)
def test_error_codes(gw, model: str, version: str, shape: list[int], code: str) -> None:  # type: ignore[no-untyped-def]
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
    inp = grpcclient.InferInput("input", shape, "FP32")
    inp.set_data_from_numpy(X.reshape(shape))
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [inp], model_version=version)
    assert info.value.status() == code


def test_upstream_failure_and_deadline(backends: dict[str, FaultBackend]) -> None:
    backends["torchserve"].fail = True
    backends["tfserving"].delay_s = 2
    with serve(fault_settings(), backends) as gw:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
        inp = grpcclient.InferInput("input", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        with pytest.raises(InferenceServerException) as info:
            client.infer("digits", [inp])
        assert info.value.status() == "StatusCode.UNAVAILABLE" and "torchserve" in info.value.message()
        with pytest.raises(InferenceServerException) as info:
            client.infer("digits", [inp], headers={"backend": "tfserving"}, client_timeout=0.3)
        assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"


def test_api_key_on_grpc(backends: dict[str, FaultBackend]) -> None:
    settings = fault_settings()
    settings.auth.api_keys = ["k1"]  # type: ignore[list-item]
    settings = type(settings).model_validate(settings.model_dump())
    with serve(settings, backends) as gw:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
        with pytest.raises(InferenceServerException) as info:
            client.is_model_ready("digits")
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException) as info:
            client.is_model_ready("digits", headers={"authorization": "Bearer k2"})
        assert info.value.status() == "StatusCode.PERMISSION_DENIED"
        assert client.is_model_ready("digits", headers={"authorization": "Bearer k1"})


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.InvalidArgument, 400, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.Unauthenticated, 401, grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied, 403, grpc.StatusCode.PERMISSION_DENIED),
        (errors.NotFound, 404, grpc.StatusCode.NOT_FOUND),
        (errors.PayloadTooLarge, 413, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.HeadersTooLarge, 431, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Overloaded, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.UpstreamError, 502, grpc.StatusCode.UNAVAILABLE),
        (errors.Unavailable, 503, grpc.StatusCode.UNAVAILABLE),
        (errors.UpstreamTimeout, 504, grpc.StatusCode.DEADLINE_EXCEEDED),
        (RuntimeError, 500, grpc.StatusCode.INTERNAL),
    ],
)
def test_one_mapping_per_protocol(exc: type[Exception], status: int, code: grpc.StatusCode) -> None:
    err = exc("boom")
    assert errors.http_status(err) == status and errors.grpc_code(err) == code
    assert errors.client_message(err) == ("internal gateway error" if exc is RuntimeError else "boom")


@pytest.mark.parametrize(
    ("exc", "headers"),
    [
        (errors.Overloaded("full", backend="ts", retry_after_s=7), {"Retry-After": "7", "X-Backend": "ts"}),
        (errors.Unavailable("open", retry_after_s=2.2), {"Retry-After": "3"}),
        (errors.Unavailable("not ready"), {"Retry-After": "5"}),
        (errors.Unauthenticated("no key"), {"WWW-Authenticate": "Bearer"}),
        (errors.HeadersTooLarge("big"), {}),
        (RuntimeError("secret"), {}),
    ],
)
def test_one_http_rendering(exc: Exception, headers: dict[str, str]) -> None:
    rendered = errors.render_http(exc, unavailable_retry_s=4.5)
    assert rendered.status == errors.http_status(exc) and dict(rendered.headers) == headers
    assert json.loads(rendered.body) == {"error": errors.client_message(exc)}
