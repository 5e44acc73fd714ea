"""Ingress API keys: 401 without, 403 wrong, 200 right, on REST and gRPC; health open; /metrics configurable;
keys compared in constant time."""

from __future__ import annotations

import inspect
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from security_support import INGRESS_KEY
from tritonclient.grpc import service_pb2 as pb

import gateway.auth
from gateway.app import create_app
from gateway.auth import ApiKeys
from gateway.errors import PermissionDenied, Unauthenticated
from gateway.settings import Settings

INFER = "/v2/models/digits/infer"
BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Bearer {INGRESS_KEY}x"}, 403),
        ({"Authorization": f"Bearer {INGRESS_KEY[:-1]}"}, 403),
        ({"Authorization": f"Bearer {INGRESS_KEY}"}, 200),
        ({"Authorization": f"bearer {INGRESS_KEY}"}, 200),
    ],
)
def test_rest_keys(keyed_gateway: Any, headers: dict[str, str], status: int) -> None:
    reply = requests.post(keyed_gateway.url + INFER, json=BODY, headers=headers, timeout=10)
    assert reply.status_code == status, reply.text
    if status != 200:
        assert INGRESS_KEY not in reply.text
        assert reply.headers.get("WWW-Authenticate") == "Bearer"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path", ["/v2", "/v2/models/digits", "/v2/models/digits/ready", "/v1/models/digits:predict", "/openapi.json"]
)
def test_every_api_path_needs_the_key(keyed_gateway: Any, path: str) -> None:
    method = "POST" if path.endswith(":predict") else "GET"
    assert requests.request(method, keyed_gateway.url + path, timeout=10).status_code == 401


@pytest.mark.e2e
def test_health_and_metrics_open_by_default(keyed_gateway: Any) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
        assert requests.get(keyed_gateway.url + path, timeout=10).status_code == 200, path


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer nope"),), grpc.StatusCode.PERMISSION_DENIED),
        ((("authorization", INGRESS_KEY),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {INGRESS_KEY}"),), grpc.StatusCode.OK),
    ],
)
def test_grpc_keys(keyed_gateway: Any, metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode) -> None:
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 1, 8, 8])
    request.raw_input_contents.append(np.full(64, 0.5, dtype="<f4").tobytes())
    with grpc.insecure_channel(f"127.0.0.1:{keyed_gateway.grpc_port}") as channel:
        rpc = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        try:
            reply = rpc(request, metadata=metadata, timeout=10)
            assert code == grpc.StatusCode.OK and len(reply.outputs) == 2
        except grpc.RpcError as err:
            assert err.code() == code, err.details()
            assert INGRESS_KEY not in (err.details() or "")


def _client(settings: Settings) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(create_app(settings, backends={}))


def test_metrics_can_require_the_key() -> None:
    base = {"routes_file": None, "routes": {"models": {}}, "server": {"grpc_port": None}}
    closed = Settings(**base, limits={"api_keys": ["k"], "metrics_public": False})  # type: ignore[arg-type]
    opened = Settings(**base, limits={"api_keys": ["k"]})  # type: ignore[arg-type]
    with _client(closed) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200
        assert client.get("/v2/health/live").status_code == 200
    with _client(opened) as client:
        assert client.get("/metrics").status_code == 200


def test_metrics_public_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINSERVE_LIMITS__METRICS_PUBLIC", "false")
    assert Settings(routes_file=None).auth.metrics_public is False


def test_key_check_is_constant_time_and_compares_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "hmac.compare_digest" in inspect.getsource(ApiKeys.check)
    calls: list[tuple[bytes, bytes]] = []
    real = gateway.auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(gateway.auth.hmac, "compare_digest", spy)
    keys = ApiKeys(["first", "second", "third"])
    for presented in ("first", "third", "nope"):
        calls.clear()
        try:
            keys.check(f"Bearer {presented}")
        except PermissionDenied:
            assert presented == "nope"
        assert len(calls) == 3, "every key is compared, whichever matches (no early exit)"
        assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    with pytest.raises(Unauthenticated):
        keys.check(None)


def test_header_size_limit_takes_effect() -> None:
    base = {"routes_file": None, "routes": {"models": {}}, "server": {"grpc_port": None}}
    with _client(Settings(**base, limits={"max_header_bytes": 2048})) as client:  # type: ignore[arg-type]
        assert client.get("/v2/health/live", headers={"X-Pad": "a" * 1500}).status_code == 200
        reply = client.get("/v2/health/live", headers={"X-Pad": "a" * 3000})
        assert reply.status_code == 431 and "2048" in reply.json()["error"]


@pytest.mark.e2e
def test_grpc_health_open_model_calls_not(keyed_gateway: Any) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{keyed_gateway.grpc_port}") as channel:

        def call(method: str, request: Any, response: Any) -> Any:
            rpc = channel.unary_unary(
                f"/inference.GRPCInferenceService/{method}",
                request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString,
            )
            return rpc(request, timeout=10)

        assert call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live
        assert call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
        for method, request, response in [
            ("ModelReady", pb.ModelReadyRequest(name="digits"), pb.ModelReadyResponse),
            ("ModelMetadata", pb.ModelMetadataRequest(name="digits"), pb.ModelMetadataResponse),
            ("ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse),
        ]:
            with pytest.raises(grpc.RpcError) as info:
                call(method, request, response)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
