"""REST adapter against the real app (uvicorn in a thread) with fault-injecting backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from gateway_harness import FaultBackend, fault_settings, serve

X = np.arange(128, dtype=np.float32).reshape(2, 1, 8, 8) / 128


def body(data: object = None, shape: list[int] | None = None, **extra: object) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": shape or [2, 1, 8, 8],
                "datatype": "FP32",
                "data": X.tolist() if data is None else data,
            }
        ],
        **extra,
    }


@pytest.fixture
def gw(backends: dict[str, FaultBackend]):  # type: ignore[no-untyped-def]
    with serve(fault_settings(), backends) as running:
        yield running


def test_health_metadata_and_who_served(gw) -> None:  # type: ignore[no-untyped-def]
    assert requests.get(gw.url + "/v2/health/live").status_code == 200
    assert requests.get(gw.url + "/v2/health/ready").status_code == 200
    assert requests.get(gw.url + "/v2/models/digits/ready").status_code == 200
    assert requests.get(gw.url + "/v2/models/digits/versions/1/ready").status_code == 200
    meta = requests.get(gw.url + "/v2/models/digits").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert requests.get(gw.url + "/v2").json()["extensions"] == ["binary_tensor_data"]
    r = requests.post(gw.url + "/v2/models/digits/infer", json=body(), headers={"X-Request-ID": "abc-1"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Backend"] == "torchserve" and r.headers["X-Request-ID"] == "abc-1"
    assert r.headers["Server-Timing"].startswith("gateway;dur=") and "upstream;dur=" in r.headers["Server-Timing"]
    out = {o["name"]: o for o in r.json()["outputs"]}
    np.testing.assert_allclose(np.reshape(out["logits"]["data"], (2, 10)), X.reshape(2, -1)[:, :10], rtol=1e-6)


def test_pin_header_and_flat_data(gw) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(
        gw.url + "/v2/models/digits/infer",
        json=body(X.reshape(-1).tolist()),
        headers={"X-Backend": "tfserving"},
    )
    assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving"
    assert (
        requests.post(gw.url + "/v2/models/digits/infer", json=body(), headers={"X-Backend": "onnx"}).status_code == 400
    )


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (body(shape=[2, 1, 8]), 400, "shape [2, 1, 8] needs 16 elements, data has 128"),
        (body(shape=[1, 2, 8, 8]), 400, "input 'input': shape [1, 2, 8, 8], expected [-1, 1, 8, 8]"),
        (
            {"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            400,
            "unknown input 'image'",
        ),
        (
            {"inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP64", "data": X.tolist()}]},
            400,
            "datatype FP64, expected FP32",
        ),
        (body(outputs=[{"name": "embedding"}]), 400, "unknown output 'embedding'"),
        ({"inputs": []}, 400, "non-empty list"),
    ],
)
def test_client_mistakes_are_400_naming_the_tensor(gw, payload, status, fragment) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(gw.url + "/v2/models/digits/infer", json=payload)
    assert r.status_code == status and fragment in r.json()["error"], r.text


def test_not_json_unknown_model_version_and_management_paths(gw) -> None:  # type: ignore[no-untyped-def]
    assert requests.post(gw.url + "/v2/models/digits/infer", data=b"{not json").status_code == 400
    assert requests.post(gw.url + "/v2/models/nope/infer", json=body()).status_code == 404
    assert requests.post(gw.url + "/v2/models/digits/versions/7/infer", json=body()).status_code == 404
    assert requests.get(gw.url + "/v2/models/nope/ready").status_code == 404
    for path in ("/models", "/models/digits", "/predictions/digits", "/v1/models/digits/metadata", "/token"):
        assert requests.get(gw.url + path).status_code in (404, 405), path


def test_binary_extension_with_tritonclient(gw) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(f"127.0.0.1:{gw.port}")
    assert client.is_server_ready() and client.is_model_ready("digits")
    inp = httpclient.InferInput("input", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=True)
    outs = [
        httpclient.InferRequestedOutput("logits", binary_data=True),
        httpclient.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer("digits", [inp], outputs=outs, headers={"X-Backend": "tfserving"})
    np.testing.assert_allclose(result.as_numpy("logits"), X.reshape(2, -1)[:, :10] + 0.5, rtol=1e-6)
    np.testing.assert_allclose(result.as_numpy("probabilities"), (X.reshape(2, -1)[:, :10] + 0.5) / 2, rtol=1e-6)
    inp.set_data_from_numpy(X, binary_data=False)
    assert client.infer("digits", [inp]).as_numpy("logits").shape == (2, 10)


def test_binary_sizes_are_checked(gw) -> None:  # type: ignore[no-untyped-def]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 1, 8, 8],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 100},
                }
            ]
        }
    ).encode()
    r = requests.post(
        gw.url + "/v2/models/digits/infer",
        data=header + X.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400 and "needs 512 bytes, binary data has 100" in r.json()["error"]


def test_tf_serving_row_format(gw) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(gw.url + "/v1/models/digits:predict", json={"instances": X.tolist()})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    assert set(r.json()["predictions"][0]) == {"logits", "probabilities"}
    r = requests.post(gw.url + "/v1/models/digits/versions/1:predict", json={"inputs": {"input": X.tolist()}})
    assert np.shape(r.json()["outputs"]["logits"]) == (2, 10)
    assert requests.post(gw.url + "/v1/models/digits:predict", json={"instances": [[1, 2]]}).status_code == 400


def test_metrics_exported(gw) -> None:  # type: ignore[no-untyped-def]
    requests.post(gw.url + "/v2/models/digits/infer", json=body())
    text = requests.get(gw.url + "/metrics").text
    assert (
        'twinserve_gateway_requests_total{backend="torchserve",model="digits",protocol="rest",status_class="2xx"}'
        in text
    )
    for name in (
        "request_duration_seconds_bucket",
        "upstream_duration_seconds_bucket",
        "circuit_state",
        "in_flight_requests",
    ):
        assert "twinserve_gateway_" + name in text
