"""Policies and resilience against the real stacks: split, shadow, failover on a real refused connection,
TorchServe key expiry, and `python -m gateway` with two workers draining on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import requests
import tritonclient.grpc as grpcclient
from e2e_support import REPO, Stacks, gateway

from serving.supervisor.ports import free_ports

BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}


def infer(url: str, **headers: str) -> requests.Response:
    return requests.post(url + "/v2/models/digits/infer", json=BODY, headers=headers, timeout=30)


def metric(url: str, prefix: str) -> float:
    lines = requests.get(url + "/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def test_split_by_weight(stacks: Stacks) -> None:
    with gateway(stacks, policy="split", weights={"torchserve": 0, "tfserving": 1}) as gw:
        assert {infer(gw.url).headers["X-Backend"] for _ in range(4)} == {"tfserving"}


def test_shadow_compares_real_outputs(stacks: Stacks) -> None:
    with gateway(stacks, policy="shadow", backend="torchserve") as gw:
        for _ in range(3):
            assert infer(gw.url).headers["X-Backend"] == "torchserve"
        deadline = time.monotonic() + 20
        while (
            metric(gw.url, "twinserve_gateway_shadow_comparisons_total") < 3 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert metric(gw.url, "twinserve_gateway_shadow_comparisons_total") == 3
        assert metric(gw.url, "twinserve_gateway_shadow_mismatches_total") == 0  # the stacks agree


def test_failover_on_refused_connection(stacks: Stacks) -> None:
    settings = stacks.settings(policy="failover", backend="torchserve")
    dead = free_ports(1)[0]  # nothing listens here: a real connection refused
    settings.backends.torchserve.rest_url = f"http://127.0.0.1:{dead}"
    from gateway_harness import serve

    with serve(settings) as gw:
        # torchserve never answered metadata, so the model is served by tfserving alone
        r = infer(gw.url)
        assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving"
        settings.backends.torchserve.rest_url = f"http://127.0.0.1:{stacks.ports.ts_inference}"


def test_torchserve_key_expiry_is_survived(stacks: Stacks) -> None:
    with gateway(stacks, ts_protocol="rest") as gw:
        assert infer(gw.url, **{"X-Backend": "torchserve"}).status_code == 200
        stacks.stack.refresh_token("inference")  # the cached key is now invalid: 401, re-read, retry
        r = infer(gw.url, **{"X-Backend": "torchserve"})
        assert r.status_code == 200, r.text


def test_python_m_gateway_two_workers_and_sigterm(stacks: Stacks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rest, grpc_port = free_ports(2)
    p = stacks.ports
    env = {
        **os.environ,
        "TWINSERVE_BACKENDS__TORCHSERVE__REST_URL": f"http://127.0.0.1:{p.ts_inference}",
        "TWINSERVE_BACKENDS__TORCHSERVE__GRPC_TARGET": f"127.0.0.1:{p.ts_grpc_inference}",
        "TWINSERVE_BACKENDS__TORCHSERVE__KEY_FILE": str(stacks.key_file),
        "TWINSERVE_BACKENDS__TFSERVING__REST_URL": f"http://127.0.0.1:{p.tf_rest}",
        "TWINSERVE_BACKENDS__TFSERVING__GRPC_TARGET": f"127.0.0.1:{p.tf_grpc}",
        "TWINSERVE_ROUTES__MODELS__DIGITS__POLICY": "split",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(rest),
            "--grpc-port",
            str(grpc_port),
            "--workers",
            "2",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{rest}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        seen = {infer(url).headers["X-Backend"] for _ in range(12)}
        assert seen == {"torchserve", "tfserving"}  # env override of the route policy took effect
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        inp = grpcclient.InferInput("input", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float32))
        assert client.infer("digits", [inp]).as_numpy("logits").shape == (1, 10)
        assert metric(url, "twinserve_gateway_requests_total") >= 12  # summed over both workers
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out[-2000:]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", rest)) != 0
