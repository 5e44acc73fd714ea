"""The compose stack, in containers, end to end: tritonclient through the containerised gateway on both stacks,
bad input, the TF side saying what it is, health driven on podman, and a model server's container stopped and
started again under the gateway."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.containers.conftest import ComposeStack

pytestmark = [pytest.mark.containers, pytest.mark.e2e]
ATOL = 1e-4  # the stacks agree with the torch reference to this (docs: parity)
BACKENDS = ("torchserve", "tfserving")


@pytest.fixture(scope="module")
def digits(artifacts: Path) -> dict[str, np.ndarray]:
    data = np.load(artifacts / "samples" / "digits.npz")
    return {k: data[k][:8] for k in ("inputs", "logits")}


def http_client(stack: ComposeStack) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(f"{stack.host}:8000", network_timeout=60)


def grpc_client(stack: ComposeStack) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(f"{stack.host}:8001")


def infer_http(stack: ComposeStack, x: np.ndarray, backend: str | None, model: str = "digits") -> np.ndarray:
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    headers = {"X-Backend": backend} if backend else None
    return http_client(stack).infer(model, [inp], headers=headers).as_numpy("logits")


def test_tritonclient_infers_through_the_gateway_on_both_stacks(
    compose_stack: ComposeStack, digits: dict[str, np.ndarray]
) -> None:
    x, want = digits["inputs"], digits["logits"]
    http, grpc_ = http_client(compose_stack), grpc_client(compose_stack)
    assert http.is_server_ready() and grpc_.is_server_ready()
    for backend in BACKENDS:
        assert http.is_model_ready("digits", headers={"X-Backend": backend}), backend
        np.testing.assert_allclose(infer_http(compose_stack, x, backend), want, atol=ATOL)
        ginp = grpcclient.InferInput("input", list(x.shape), "FP32")
        ginp.set_data_from_numpy(x)
        got = grpc_.infer("digits", [ginp], model_version="1", headers={"backend": backend})
        np.testing.assert_allclose(got.as_numpy("logits"), want, atol=ATOL)
        np.testing.assert_allclose(got.as_numpy("probabilities").sum(axis=1), 1.0, atol=1e-5)


def test_resnet18_answers_on_both_stacks_alike(compose_stack: ComposeStack) -> None:
    x = np.random.default_rng(7).standard_normal((1, 3, 224, 224), dtype=np.float32)
    ts, tf = (infer_http(compose_stack, x, b, "resnet18") for b in BACKENDS)
    assert ts.shape == (1, 1000)
    np.testing.assert_allclose(ts, tf, atol=1e-3)


def test_bad_input_is_a_clear_client_error(compose_stack: ComposeStack, digits: dict[str, np.ndarray]) -> None:
    wrong = digits["inputs"][:2].reshape(2, 64)
    r = requests.post(
        compose_stack.url(8000, "/v2/models/digits/infer"),
        json={"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": wrong.ravel().tolist()}]},
        timeout=30,
    )
    assert r.status_code == 400 and "expected [-1, 1, 8, 8]" in r.json()["error"], r.text
    ginp = grpcclient.InferInput("input", [2, 64], "FP32")
    ginp.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException) as err:
        grpc_client(compose_stack).infer("digits", [ginp])
    assert err.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT) and "input" in err.value.message()
    good = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]}
    r = requests.post(compose_stack.url(8000, "/v2/models/nosuch/infer"), json=good, timeout=30)
    assert r.status_code == 404 and "nosuch" in r.json()["error"], r.text


def test_the_tf_side_says_what_it_is(compose_stack: ComposeStack) -> None:
    metrics = requests.get(compose_stack.url(8501, "/monitoring/prometheus/metrics"), timeout=30).text
    info = compose_stack.inspect(compose_stack.container("tfserving"))
    if compose_stack.tf_side == "standin":
        assert "twinserve_tfserving_standin" in metrics
        assert "standin" in info["Name"] and info["Config"]["Labels"]["org.twinserve.tf-side"] == "standin"
    else:
        assert "twinserve_tfserving_standin" not in metrics and "standin" not in info["Name"]


def test_every_service_passes_its_own_health_check(compose_stack: ComposeStack) -> None:
    # On podman this proves the health driver runs the checks: without it they stay "starting" forever.
    for service in ("torchserve", "tfserving", "gateway", "locust-master", "locust-worker"):
        state = compose_stack.inspect(compose_stack.container(service))["State"]
        health = state.get("Health") or state.get("Healthcheck") or {}
        assert health.get("Status") == "healthy", (service, health)


def test_torchserve_runs_the_exporters_torch(compose_stack: ComposeStack) -> None:
    done = compose_stack.compose(
        "exec", "-T", "torchserve", "python", "-c", "import torch, ts; print(torch.__version__, ts.__version__)"
    )
    assert done.returncode == 0, done.stderr
    torch_version, ts_version = done.stdout.split()
    assert torch_version.split("+")[0] == "2.13.0" and ts_version == "0.12.0"


@pytest.mark.parametrize(("stopped", "serving"), [("tfserving", "torchserve"), ("torchserve", "tfserving")])
def test_a_stopped_server_container_is_a_clear_503_and_recovers(
    compose_stack: ComposeStack, digits: dict[str, np.ndarray], stopped: str, serving: str
) -> None:
    x, want = digits["inputs"][:2], digits["logits"][:2]
    done = compose_stack.compose("stop", stopped)
    assert done.returncode == 0, done.stderr
    try:
        compose_stack.wait_ready(serving)
        np.testing.assert_allclose(infer_http(compose_stack, x, serving), want, atol=ATOL)
        r = requests.post(
            compose_stack.url(8000, "/v2/models/digits/infer"),
            json={"inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}]},
            headers={"X-Backend": stopped},
            timeout=60,
        )
        assert r.status_code in (502, 503, 504) and r.json()["error"], r.text  # a server error naming the cause
    finally:
        done = compose_stack.compose("start", stopped)
        assert done.returncode == 0, done.stderr
    # Recovered: the gateway serves the restarted server's answers again (it loads its models first).
    deadline = time.monotonic() + 300
    while True:
        try:
            got = infer_http(compose_stack, x, stopped)
            break
        except InferenceServerException:
            assert time.monotonic() < deadline, f"{stopped} did not come back within 300 s"
            time.sleep(3)
    np.testing.assert_allclose(got, want, atol=ATOL)
    compose_stack.wait_ready(stopped)


FAILOVER_PORT = 18000


def test_failover_serves_from_the_other_stack_when_a_server_container_stops(
    compose_stack: ComposeStack, digits: dict[str, np.ndarray]
) -> None:
    """A second gateway container of the same image on the same network, with digits routed `failover` (primary
    TorchServe): with TorchServe's container stopped, an unpinned request is answered by TF Serving, correctly."""
    name = "twinserve-gateway-failover"
    done = compose_stack.compose(
        "run", "-d", "--no-deps", "--name", name,
        "-p", f"{compose_stack.host}:{FAILOVER_PORT}:8000",
        "-e", "TWINSERVE_ROUTES__MODELS__DIGITS__POLICY=failover",
        "-e", "TWINSERVE_ROUTES__MODELS__DIGITS__BACKEND=torchserve",
        "gateway",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    x, want = digits["inputs"][:2], digits["logits"][:2]
    body = {"inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}]}
    url = compose_stack.url(FAILOVER_PORT, "/v2/models/digits/infer")
    try:
        deadline = time.monotonic() + 120
        while True:  # the new gateway probes both backends before it reports ready
            try:
                if requests.get(compose_stack.url(FAILOVER_PORT, "/v2/health/ready"), timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the failover gateway never became ready"
            time.sleep(2)
        first = requests.post(url, json=body, timeout=60)
        assert first.status_code == 200 and first.headers["X-Backend"] == "torchserve", first.text
        assert compose_stack.compose("stop", "torchserve").returncode == 0
        try:
            r = requests.post(url, json=body, timeout=60)
            assert r.status_code == 200, r.text
            assert r.headers["X-Backend"] == "tfserving"  # the same model, answered by the other framework
            out = {o["name"]: o for o in r.json()["outputs"]}["logits"]
            np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(out["shape"]), want, atol=ATOL)
        finally:
            assert compose_stack.compose("start", "torchserve").returncode == 0
        compose_stack.wait_ready("torchserve")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False, timeout=60)
