"""One deadline per request, against the real TF side behind a fault proxy that holds every answer back: a slow
upstream gets one clean 504 (DEADLINE_EXCEEDED on gRPC) at the route's deadline, not at the backend's own 30 s
timeout, and a failover's primary gets only its share of the deadline before the other stack answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from e2e_support import Stacks, gateway, metric
from tritonclient.utils import InferenceServerException

from reliability.faultproxy import FaultProxy

BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}
UPSTREAM = "twinserve_gateway_upstream_duration_seconds_count"


@pytest.fixture
def slow_tf(stacks: Stacks) -> Iterator[FaultProxy]:
    """A pass-through proxy in front of the TF side's gRPC port (the test slows it down once the gateway is up)."""
    proxy = FaultProxy("127.0.0.1", stacks.ports.tf_grpc).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def timed_out(url: str) -> float:
    """Upstream calls to the TF side that ended in a timeout."""
    lines = requests.get(url + "/metrics", timeout=10).text.splitlines()
    wanted = ('backend="tfserving"', 'outcome="timeout"', 'model="digits"')
    hits = [line for line in lines if line.startswith(UPSTREAM) and all(label in line for label in wanted)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in hits)


def infer(url: str) -> tuple[requests.Response, float]:
    t0 = time.monotonic()
    r = requests.post(f"{url}/v2/models/digits/infer", json=BODY, timeout=60)
    return r, time.monotonic() - t0


def test_a_slow_upstream_gets_one_504_at_the_route_deadline(stacks: Stacks, slow_tf: FaultProxy) -> None:
    tf_ports = (stacks.ports.tf_rest, slow_tf.port)
    with gateway(stacks, tf_ports=tf_ports, policy="pin", backend="tfserving", timeout_s=1.0) as gw:
        assert infer(gw.url)[0].status_code == 200  # through the proxy while it passes
        slow_tf.set("delay", delay_s=15.0)
        r, elapsed = infer(gw.url)
        assert r.status_code == 504 and r.headers["X-Backend"] == "tfserving", r.text
        assert "route deadline of 1s passed" in r.json()["error"]
        # the route's 1 s, not the backend's 30 s (nor the proxy's 15 s); 10 s is a loaded box's margin
        assert 1.0 <= elapsed < 10, elapsed
        assert timed_out(gw.url) == 1  # one upstream attempt, timed out once

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
        inp = grpcclient.InferInput("input", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(np.full((1, 1, 8, 8), 0.5, np.float32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("digits", [inp])
        assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        assert "route deadline of 1s passed" in (info.value.message() or "")
        assert timed_out(gw.url) == 2


def test_failover_primary_gets_its_share_of_the_deadline(stacks: Stacks, slow_tf: FaultProxy) -> None:
    tf_ports = (stacks.ports.tf_rest, slow_tf.port)
    with gateway(stacks, tf_ports=tf_ports, policy="failover", backend="tfserving", timeout_s=3.0) as gw:
        slow_tf.set("delay", delay_s=15.0)
        r, elapsed = infer(gw.url)
        assert r.status_code == 200 and r.headers["X-Backend"] == "torchserve", r.text
        assert elapsed >= 1.5  # the primary had half the deadline, then TorchServe answered
        assert timed_out(gw.url) == 1
        assert metric(gw.url, "twinserve_gateway_failovers_total") == 1
