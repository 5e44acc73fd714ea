"""Inference through the gateway on both real stacks, every endpoint, both upstream protocols."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from e2e_support import ARTIFACTS, Stacks, gateway

ATOL = 1e-4  # the stacks agree with the torch reference to this (docs: parity)


@pytest.mark.parametrize(("ts_protocol", "tf_protocol"), [("rest", "grpc"), ("grpc", "rest")])
def test_v2_rest_and_grpc_on_either_stack(
    stacks: Stacks, samples: dict[str, np.ndarray], ts_protocol: str, tf_protocol: str
) -> None:
    x, want = samples["inputs"][:4], samples["logits"][:4]
    with gateway(stacks, ts_protocol=ts_protocol, tf_protocol=tf_protocol) as gw:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{gw.port}")
        grpc_ = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
        assert http.is_server_ready() and grpc_.is_server_ready(), gw.plane.registry.models
        for backend in ("torchserve", "tfserving"):
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            got = http.infer("digits", [inp], headers={"X-Backend": backend}).as_numpy("logits")
            np.testing.assert_allclose(got, want, atol=ATOL)
            ginp = grpcclient.InferInput("input", list(x.shape), "FP32")
            ginp.set_data_from_numpy(x)
            got = grpc_.infer("digits", [ginp], model_version="1", headers={"backend": backend})
            np.testing.assert_allclose(got.as_numpy("logits"), want, atol=ATOL)
            probs = got.as_numpy("probabilities")
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_every_rest_endpoint(stacks: Stacks, samples: dict[str, np.ndarray]) -> None:
    with gateway(stacks) as gw:
        for path in (
            "/v2/health/live",
            "/v2/health/ready",
            "/v2",
            "/v2/models/digits",
            "/v2/models/digits/versions/1",
            "/v2/models/digits/ready",
            "/v2/models/resnet18/ready",
            "/metrics",
        ):
            assert requests.get(gw.url + path, timeout=10).status_code == 200, path
        meta = requests.get(gw.url + "/v2/models/digits").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
        assert {o["name"] for o in meta["outputs"]} == {"logits", "probabilities"}
        body = json.loads((ARTIFACTS / "samples" / "digits.json").read_text())
        for backend in ("torchserve", "tfserving"):
            r = requests.post(gw.url + "/v1/models/digits:predict", json=body, headers={"X-Backend": backend})
            assert r.status_code == 200 and r.headers["X-Backend"] == backend, r.text
            n = len(body["instances"])
            np.testing.assert_allclose([p["logits"] for p in r.json()["predictions"]], samples["logits"][:n], atol=ATOL)
        bad = {"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": [0.0] * 192}]}
        r = requests.post(gw.url + "/v2/models/digits/infer", json=bad)
        assert r.status_code == 400 and "expected [-1, 1, 8, 8]" in r.json()["error"]


def test_resnet18_both_stacks_agree(stacks: Stacks) -> None:
    data = np.load(ARTIFACTS / "samples" / "resnet18.npz")
    x, want = data["inputs"][:1], data["logits"][:1]
    with gateway(stacks, ts_protocol="grpc", tf_protocol="grpc") as gw:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
        for backend in ("torchserve", "tfserving"):
            inp = grpcclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            got = client.infer("resnet18", [inp], headers={"backend": backend}).as_numpy("logits")
            np.testing.assert_allclose(got, want, atol=1e-3)
