"""Per-model endpoints (routes.models.<m>.endpoints) pick each model's client; the wire is tested in
tests/deploy/test_kserve_gateway.py against real TorchServe and TF Serving stand-in servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.backends import KServeV1Backend, PerModelBackend, TFServingBackend, TorchServeBackend, build_backends
from gateway.errors import UpstreamError
from gateway.settings import Settings

TS_HOST = "http://digits-predictor.twinserve-torchserve.svc.cluster.local"
TF_HOST = "http://digits-predictor.twinserve-tfserving.svc.cluster.local"


def settings(digits: dict[str, object], resnet18: dict[str, object] | None = None) -> Settings:
    models = {"digits": {"endpoints": digits}}
    if resnet18 is not None:
        models["resnet18"] = {"endpoints": resnet18}
    return Settings(
        routes_file=None,
        routes={"models": models},
        backends={"torchserve": {"rest_url": "http://torchserve:8080", "key_file": Path("/keys/key_file.json")}},
    )


def test_without_endpoints_each_stack_has_one_client() -> None:
    backends = build_backends(Settings(routes_file=None, routes={"models": {"digits": {}}}))
    assert type(backends["torchserve"]) is TorchServeBackend and type(backends["tfserving"]) is TFServingBackend


def test_endpoints_route_their_model_and_leave_the_others_on_the_stack() -> None:
    backends = build_backends(
        settings({"torchserve": {"protocol": "kserve-v1", "rest_url": TS_HOST}, "tfserving": {"rest_url": TF_HOST}}, {})
    )
    ts, tf = backends["torchserve"], backends["tfserving"]
    assert isinstance(ts, PerModelBackend) and isinstance(tf, PerModelBackend)
    assert (ts.name, tf.name) == ("torchserve", "tfserving")  # breakers, limits and metrics stay per stack
    kserve = ts.client("digits")
    assert isinstance(kserve, KServeV1Backend) and kserve.name == "torchserve"
    assert kserve.settings.rest_url == TS_HOST
    shared = ts.client("resnet18")
    assert type(shared) is TorchServeBackend and shared.settings.rest_url == "http://torchserve:8080"
    tf_digits = tf.client("digits")
    assert type(tf_digits) is TFServingBackend and tf_digits.settings.rest_url == TF_HOST
    assert tf_digits.settings.protocol == "grpc"  # only rest_url was overridden: the stack's protocol stays
    assert tf.client("resnet18").settings.rest_url == "http://127.0.0.1:8501"


def test_a_native_endpoint_keeps_the_stacks_other_settings() -> None:
    backends = build_backends(settings({"torchserve": {"protocol": "grpc", "grpc_target": "digits-ts:7070"}}))
    client = backends["torchserve"].client("digits")  # type: ignore[attr-defined]
    assert type(client) is TorchServeBackend
    assert (client.settings.protocol, client.settings.grpc_target) == ("grpc", "digits-ts:7070")
    assert client.settings.key_file == Path("/keys/key_file.json")


def test_no_shared_client_when_every_model_has_an_endpoint() -> None:
    ep = {"torchserve": {"protocol": "kserve-v1", "rest_url": TS_HOST}}
    ts = build_backends(settings(ep, ep))["torchserve"]
    assert isinstance(ts, PerModelBackend) and ts.shared is None
    with pytest.raises(UpstreamError, match="no endpoint for model 'other'"):
        ts.client("other")
