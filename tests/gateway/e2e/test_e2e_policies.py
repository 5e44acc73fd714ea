"""Policies and resilience against the real stacks: pin, split, shadow, failover (dead port, a stopped TF side,
breaker open and half-open), TorchServe key expiry on both upstream protocols, and version mapping."""

from __future__ import annotations

import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from e2e_support import ARTIFACTS, Stacks, gateway, metric, wait_for
from gateway_harness import serve

from contract.ports import Ports, free_ports

BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}
CIRCUIT = 'twinserve_gateway_circuit_state{backend="tfserving"}'


def infer(url: str, model: str = "digits", **headers: str) -> requests.Response:
    return requests.post(f"{url}/v2/models/{model}/infer", json=BODY, headers=headers, timeout=30)


def test_pin_route_and_pin_override(stacks: Stacks) -> None:
    with gateway(stacks, policy="pin", backend="tfserving") as gw:
        assert {infer(gw.url).headers["X-Backend"] for _ in range(5)} == {"tfserving"}
        assert infer(gw.url, **{"X-Backend": "torchserve"}).headers["X-Backend"] == "torchserve"
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
        inp = grpcclient.InferInput("input", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(np.full((1, 1, 8, 8), 0.5, np.float32))
        for backend in ("torchserve", "tfserving"):
            answer = client.infer("digits", [inp], headers={"backend": backend}).get_response()
            assert answer.model_name == "digits"
        r = infer(gw.url, **{"X-Backend": "onnx"})
        assert r.status_code == 400 and "unknown" in r.json()["error"]


def test_split_weights_observed_and_sticky(stacks: Stacks) -> None:
    n = 200
    route = {"policy": "split", "weights": {"torchserve": 1, "tfserving": 3}, "sticky_header": "X-User"}
    with gateway(stacks, **route) as gw, requests.Session() as session:
        seen = [
            session.post(gw.url + "/v2/models/digits/infer", json=BODY, timeout=30).headers["X-Backend"]
            for _ in range(n)
        ]
        share = seen.count("tfserving") / n
        assert 0.62 < share < 0.88, share  # 0.75 +- 4 sigma of a binomial(200, 0.75)
        for user in ("alice", "bob", "carol"):
            got = {
                session.post(
                    gw.url + "/v2/models/digits/infer", json=BODY, headers={"X-User": user}, timeout=30
                ).headers["X-Backend"]
                for _ in range(8)
            }
            assert len(got) == 1, (user, got)  # one key, one backend
        spread = {
            session.post(
                gw.url + "/v2/models/digits/infer", json=BODY, headers={"X-User": f"u{i}"}, timeout=30
            ).headers["X-Backend"]
            for i in range(40)
        }
        assert spread == {"torchserve", "tfserving"}


def test_shadow_compares_live_outputs_and_counts_drops(stacks: Stacks) -> None:
    with gateway(stacks, policy="shadow", backend="torchserve") as gw:
        for _ in range(5):
            assert infer(gw.url).headers["X-Backend"] == "torchserve"
        comparisons = "twinserve_gateway_shadow_comparisons_total"
        assert wait_for(lambda: metric(gw.url, comparisons) >= 5)
        assert metric(gw.url, comparisons) == 5
        assert metric(gw.url, "twinserve_gateway_shadow_mismatches_total") == 0  # the stacks agree
        assert metric(gw.url, 'twinserve_gateway_shadow_max_abs_diff_count{model="digits"}') == 5
    # A slow shadow (resnet18 on TorchServe) behind a one-slot queue: a burst overflows it, never the client.
    limits = {"shadow_queue_size": 1, "shadow_workers": 1}
    with gateway(stacks, policy="shadow", backend="tfserving", limits=limits) as gw:
        x = np.load(ARTIFACTS / "samples" / "resnet18.npz")["inputs"][:1]
        body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}

        def one(_: int) -> int:
            return requests.post(gw.url + "/v2/models/resnet18/infer", json=body, timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(16))) == {200}
        done = "twinserve_gateway_shadow_comparisons_total"
        dropped = 'twinserve_gateway_shadow_dropped_total{model="resnet18",reason="queue_full"}'
        assert wait_for(lambda: metric(gw.url, done) + metric(gw.url, dropped) >= 16, timeout=60)
        assert metric(gw.url, dropped) >= 1
        assert metric(gw.url, done) + metric(gw.url, dropped) == 16  # every mirror is compared or counted
        assert metric(gw.url, "twinserve_gateway_shadow_mismatches_total") == 0


def test_failover_on_refused_connection(stacks: Stacks) -> None:
    settings = stacks.settings(policy="failover", backend="torchserve")
    dead = free_ports(1)[0]  # nothing listens here: a real connection refused
    settings.backends.torchserve.rest_url = f"http://127.0.0.1:{dead}"
    with serve(settings) as gw:
        # torchserve never answered metadata, so the model is served by tfserving alone
        r = infer(gw.url)
        assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving"
        r = infer(gw.url, **{"X-Backend": "torchserve"})
        assert r.status_code == 503 and "torchserve" in r.json()["error"]


@pytest.fixture
def own_tf_side() -> tuple[Ports, Path]:
    """Ports and a run directory for a private TF Serving stand-in that a test may stop and restart."""
    run = Path(tempfile.mkdtemp(prefix="gwtf-"))
    yield Ports.ephemeral(), run
    shutil.rmtree(run, ignore_errors=True)


def test_failover_breaker_opens_and_half_open_probe_closes(stacks: Stacks, own_tf_side: tuple[Ports, Path]) -> None:
    from supervisor.stack import Stack

    ports, run = own_tf_side
    tf = Stack(run, ARTIFACTS, ports)
    tf.up(["tfserving"], timeout=120)
    try:
        limits = {"breaker_failures": 2, "breaker_cooldown_s": 1.0, "health_interval_s": 600}
        settings = stacks.settings(
            policy="failover", backend="tfserving", limits=limits, tf_ports=(ports.tf_rest, ports.tf_grpc)
        )
        with serve(settings) as gw:
            assert infer(gw.url).headers["X-Backend"] == "tfserving"
            tf.down()  # the TF side is gone: connection refused on its port
            for _ in range(4):
                r = infer(gw.url)
                assert r.status_code == 200 and r.headers["X-Backend"] == "torchserve", r.text
            assert metric(gw.url, CIRCUIT) == 2  # open after 2 failures
            assert metric(gw.url, "twinserve_gateway_failovers_total") == 2  # open: no more attempts on it
            tf.up(["tfserving"], timeout=120)
            assert wait_for(lambda: infer(gw.url).headers["X-Backend"] == "tfserving", timeout=30)
            assert metric(gw.url, CIRCUIT) == 0  # the half-open probe succeeded and closed it
    finally:
        tf.down()


def test_health_checks_drop_and_readmit_a_stopped_backend(stacks: Stacks, own_tf_side: tuple[Ports, Path]) -> None:
    from supervisor.stack import Stack

    ports, run = own_tf_side
    tf = Stack(run, ARTIFACTS, ports)
    tf.up(["tfserving"], timeout=120)
    try:
        settings = stacks.settings(
            policy="pin",
            backend="tfserving",
            limits={"health_interval_s": 0.3},
            tf_ports=(ports.tf_rest, ports.tf_grpc),
        )
        with serve(settings) as gw:
            assert requests.get(gw.url + "/v2/models/digits/ready").status_code == 200
            tf.down()
            assert wait_for(lambda: requests.get(gw.url + "/v2/models/digits/ready").status_code == 503)
            assert requests.get(gw.url + "/v2/health/ready").status_code == 503
            assert infer(gw.url, **{"X-Backend": "torchserve"}).status_code == 200  # the other stack still serves
            tf.up(["tfserving"], timeout=120)
            assert wait_for(lambda: requests.get(gw.url + "/v2/health/ready").status_code == 200, timeout=30)
            assert infer(gw.url).headers["X-Backend"] == "tfserving"
    finally:
        tf.down()


@pytest.mark.parametrize("ts_protocol", ["rest", "grpc"])
def test_torchserve_key_expiry_is_survived(stacks: Stacks, ts_protocol: str) -> None:
    with gateway(stacks, ts_protocol=ts_protocol) as gw:
        assert infer(gw.url, **{"X-Backend": "torchserve"}).status_code == 200
        stacks.stack.refresh_token("inference")  # the cached key is now invalid: rejected, re-read, retried
        r = infer(gw.url, **{"X-Backend": "torchserve"})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("ts_protocol", ["rest", "grpc"])
def test_rejected_key_is_502_naming_torchserve(stacks: Stacks, tmp_path: Path, ts_protocol: str) -> None:
    stale = tmp_path / "key_file.json"
    stale.write_text(json.dumps({"inference": {"key": "stale"}, "management": {"key": "x"}, "API": {"key": "x"}}))
    settings = stacks.settings(ts_protocol=ts_protocol)
    with serve(settings) as gw:
        assert infer(gw.url, **{"X-Backend": "torchserve"}).status_code == 200
        # as if the key had expired with no new one written
        gw.plane.backends["torchserve"].settings.key_file = stale
        r = infer(gw.url, **{"X-Backend": "torchserve"})
        assert r.status_code == 502 and r.json()["error"].startswith("torchserve:"), r.text  # not the client's 4xx


@pytest.mark.parametrize("ts_protocol", ["rest", "grpc"])
def test_version_mapping_v2_1_is_torchserve_1_0_and_tf_1(stacks: Stacks, ts_protocol: str) -> None:
    with gateway(stacks, ts_protocol=ts_protocol) as gw:
        for backend in ("torchserve", "tfserving"):
            r = requests.post(
                gw.url + "/v2/models/digits/versions/1/infer", json=BODY, headers={"X-Backend": backend}, timeout=30
            )
            assert r.status_code == 200 and r.json()["model_version"] == "1", (backend, r.text)
        r = requests.post(gw.url + "/v2/models/digits/versions/2/infer", json=BODY, timeout=30)
        assert r.status_code == 404
    settings = stacks.settings(ts_protocol=ts_protocol)
    settings.backends.torchserve.version_format = "{version}"  # TorchServe knows "1.0", not "1"
    with serve(settings) as gw:
        r = infer(gw.url, **{"X-Backend": "torchserve"})
        assert r.status_code == 503, r.text  # the probe with the mapped version failed: not served there
        state = gw.plane.registry.models["digits"]
        assert "torchserve" not in state.backends and "torchserve" in state.reason
        assert infer(gw.url, **{"X-Backend": "tfserving"}).status_code == 200
