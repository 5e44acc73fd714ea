"""Every 503 says when to come back (Retry-After), as 429 does: circuit open, model not ready, draining."""

from __future__ import annotations

import requests
from gateway_harness import FaultBackend, fault_settings, serve
from test_policies import infer

from gateway.metadata import ModelMetadata, TensorMeta


def test_circuit_open_503_says_when_the_probe_comes(backends: dict[str, FaultBackend]) -> None:
    settings = fault_settings()
    settings.breaker.failures = 1
    settings.breaker.cooldown_s = 30
    settings.health.interval_s = 60
    backends["torchserve"].fail = True
    with serve(settings, backends) as gw:
        assert infer(gw).status_code == 502
        r = infer(gw)
        assert r.status_code == 503 and "circuit open" in r.json()["error"]
        # the rest of the 30 s cool-down, whole seconds rounded up: the probe is never sooner than this says
        assert 1 <= int(r.headers["Retry-After"]) <= 30, r.headers


def test_not_ready_503s_carry_the_health_interval(backends: dict[str, FaultBackend]) -> None:
    meta = backends["tfserving"].meta
    backends["tfserving"].meta = ModelMetadata(
        meta.name, meta.versions, "x", (TensorMeta("input", "FP32", (-1, 3, 8, 8)),), meta.outputs
    )
    settings = fault_settings()
    settings.health.interval_s = 2.5
    with serve(settings, backends) as gw:
        answers = {
            "infer": infer(gw),
            "model ready": requests.get(gw.url + "/v2/models/digits/ready", timeout=10),
            "model metadata": requests.get(gw.url + "/v2/models/digits", timeout=10),
            "server ready": requests.get(gw.url + "/v2/health/ready", timeout=10),
        }
        for what, r in answers.items():
            assert r.status_code == 503, what
            assert r.headers.get("Retry-After") == "3", f"{what}: {dict(r.headers)}"  # 2.5 s rounded up


def test_pinned_to_a_stack_that_does_not_serve_the_model(backends: dict[str, FaultBackend]) -> None:
    backends["tfserving"].health = False
    settings = fault_settings(policy="split")
    settings.health.failures = 1
    settings.health.interval_s = 0.2
    with serve(settings, backends) as gw:
        gw.run(gw.plane.health.check())
        r = infer(gw, **{"X-Backend": "tfserving"})
        assert r.status_code == 503, r.text
        assert r.headers.get("Retry-After") == "1", dict(r.headers)  # never 0: that invites a retry storm


def test_draining_readiness_503_has_retry_after(backends: dict[str, FaultBackend]) -> None:
    with serve(fault_settings(), backends) as gw:
        assert requests.get(gw.url + "/v2/health/ready", timeout=10).status_code == 200
        gw.plane.draining = True
        for path in ("/v2/health/ready", "/v2/models/digits/ready"):
            r = requests.get(gw.url + path, timeout=10)
            assert r.status_code == 503 and r.headers.get("Retry-After") == "2", (path, dict(r.headers))
        assert infer(gw).status_code == 200  # draining still serves what arrives
