"""The gateway fronting KServe-style hosts: one address per model (routes' `endpoints`), KServe v1 to TorchServe.

Real servers only: TorchServe as kserve-torchserve runs it (v1 envelope, token off; kserve_torchserve.py) for
digits, the native stack's TorchServe (token on) as the stack's shared server for resnet18, and the TF Serving
stand-in, which speaks TF Serving's REST API as kserve-tensorflow-serving's TF Serving does. The stacks' own
URLs point at a closed port for what must come from an endpoint, so an override that is ignored fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from contract.ports import free_ports
from gateway.settings import Settings
from tests.conftest import NativeStack
from tests.deploy.kserve_torchserve import KServeTorchServe
from tests.gateway.gateway_harness import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def kserve_settings(ts_v1: KServeTorchServe, native: NativeStack) -> Settings:
    """Routes as `make k8s` renders them for the kserve flavour, with loopback addresses instead of cluster DNS."""
    routes = Settings(routes_file=REPO / "gateway/routes.yaml").routes.models
    (closed,) = free_ports(1)
    p = native.ports
    models: dict[str, Any] = {name: route.model_dump(exclude={"endpoints"}) for name, route in routes.items()}
    models["digits"]["endpoints"] = {
        "torchserve": {"protocol": "kserve-v1", "rest_url": ts_v1.inference_url},
        "tfserving": {"protocol": "rest", "rest_url": f"http://127.0.0.1:{p.tf_rest}"},
    }
    return Settings(
        routes_file=None,
        routes={"models": models},
        server={"host": "127.0.0.1", "port": 0, "grpc_port": 0},
        backends={
            "torchserve": {  # resnet18 has no endpoint: it stays on the stack's shared TorchServe
                "protocol": "rest",
                "rest_url": f"http://127.0.0.1:{p.ts_inference}",
                "key_file": native.run_dir / "torchserve" / "key_file.json",
                "timeout_s": 60,
            },
            # nothing listens here: TF answers for digits can only come from its endpoint
            "tfserving": {
                "protocol": "grpc",
                "grpc_target": f"127.0.0.1:{closed}",
                "rest_url": f"http://127.0.0.1:{closed}",
            },
        },
        limits={"health_interval_s": 600.0},  # no health probes during the test: every upstream call is ours
    )


def infer(url: str, model: str, batch: np.ndarray, backend: str) -> requests.Response:
    body = {
        "inputs": [{"name": "input", "shape": list(batch.shape), "datatype": "FP32", "data": batch.ravel().tolist()}]
    }
    return requests.post(f"{url}/v2/models/{model}/infer", json=body, headers={"X-Backend": backend}, timeout=120)


def outputs(reply: requests.Response) -> dict[str, np.ndarray]:
    assert reply.status_code == 200, reply.text
    return {o["name"]: np.reshape(o["data"], o["shape"]) for o in reply.json()["outputs"]}


def test_gateway_serves_each_model_from_its_own_host(
    ts_v1: KServeTorchServe, native_stack: NativeStack, digits: dict[str, np.ndarray], artifacts: Path
) -> None:
    predict = "/v1/models/digits:predict"
    before = ts_v1.requests_to(predict)
    with serve(kserve_settings(ts_v1, native_stack)) as gw:
        assert ts_v1.requests_to(predict) == before + 1  # the signature probe went to digits' own host
        assert requests.get(gw.url + "/v2/models/digits/ready", headers={"X-Backend": "torchserve"}, timeout=10).ok
        assert requests.get(gw.url + "/v2/models/digits/ready", headers={"X-Backend": "tfserving"}, timeout=10).ok
        for backend in ("torchserve", "tfserving"):  # KServe v1 to TorchServe, TF Serving's REST to TF
            calls = ts_v1.requests_to(predict)
            reply = infer(gw.url, "digits", digits["inputs"][:4], backend)
            assert ts_v1.requests_to(predict) == calls + (backend == "torchserve")  # answered by digits' own host
            assert reply.headers["X-Backend"] == backend
            got = outputs(reply)
            np.testing.assert_allclose(got["logits"], digits["logits"][:4], atol=1e-3)
            np.testing.assert_allclose(got["probabilities"], digits["probabilities"][:4], atol=1e-4)
        resnet = np.load(artifacts / "samples/resnet18.npz")
        got = outputs(infer(gw.url, "resnet18", resnet["inputs"][:1], "torchserve"))  # the shared TorchServe, token on
        np.testing.assert_allclose(got["logits"], resnet["logits"][:1], atol=1e-2)
        # resnet18 has no TF endpoint and the TF stack's own address is closed: not served there
        assert (
            requests.get(
                gw.url + "/v2/models/resnet18/ready", headers={"X-Backend": "tfserving"}, timeout=10
            ).status_code
            == 503
        )
