"""`python -m gateway` as a real process on the real stacks: two workers, env settings, and SIGTERM under a
bounded load: readiness goes 503 at once, every request the gateway accepted is answered 200, then it exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from e2e_support import REPO, Stacks, metric, wait_for

from contract.ports import free_ports

BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}


DRAIN_DELAY_S = 3.0
"""Readiness reports 503 this long after SIGTERM while requests are still served: 30 balancer polls, a margin
for a loaded 2-core machine to see the 503 and send one more request before the listener closes."""


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    url: str
    grpc_port: int


@pytest.fixture
def gateway_process(stacks: Stacks) -> Iterator[Gateway]:
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
        "TWINSERVE_SERVER__DRAIN_DELAY_S": str(DRAIN_DELAY_S),
        "TWINSERVE_SERVER__GRACEFUL_TIMEOUT_S": "10",
    }
    argv = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(rest), "--grpc-port", str(grpc_port)]
    proc = subprocess.Popen(
        [*argv, "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: teardown reaches the workers too
    )
    url = f"http://127.0.0.1:{rest}"

    def ready() -> bool:
        try:
            return requests.get(url + "/v2/health/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return proc.poll() is not None  # stop waiting on a dead process; the test then fails clearly

    try:
        assert wait_for(ready, timeout=120, interval=0.3) and proc.poll() is None, proc.communicate()[0][-3000:]
        yield Gateway(proc, url, grpc_port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)


@dataclass
class Load:
    """Clients behind a load balancer: they send while the balancer sees the gateway ready (polled every
    0.1 s, like a health-checking balancer), one connection per request, at most `max_requests` in all."""

    url: str
    max_requests: int = 2000
    ok: int = 0
    ok_while_draining: int = 0
    lost: list[str] = field(default_factory=list)
    stopped_by: str = ""
    """What made the balancer stop sending: "503" (readiness said so) or the error of a closed listener."""
    sending: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def balancer(self) -> None:
        self.sending.set()
        while self.sending.is_set():
            try:
                status = requests.get(self.url + "/v2/health/ready", timeout=2).status_code
                if status != 200:
                    self.stopped_by = str(status)
                    self.sending.clear()
            except requests.ConnectionError as err:
                self.stopped_by = type(err).__name__
                self.sending.clear()
            time.sleep(0.1)

    def client(self) -> None:
        while self.sending.is_set():
            with self.lock:
                if self.ok + len(self.lost) >= self.max_requests:
                    return
            draining = self.draining.is_set()
            try:
                r = requests.post(
                    self.url + "/v2/models/digits/infer", json=BODY, headers={"Connection": "close"}, timeout=30
                )
                outcome = "ok" if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:100]}"
            except requests.ConnectionError as err:
                outcome = f"{type(err).__name__}: {err}"
            with self.lock:
                if outcome != "ok":
                    self.lost.append(outcome)
                else:
                    self.ok += 1
                    self.ok_while_draining += draining


def test_python_m_gateway_two_workers_env_settings_and_grpc(gateway_process: Gateway) -> None:
    url = gateway_process.url
    seen = {
        requests.post(url + "/v2/models/digits/infer", json=BODY, timeout=30).headers["X-Backend"] for _ in range(16)
    }
    assert seen == {"torchserve", "tfserving"}  # env override of the route policy took effect
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{gateway_process.grpc_port}")
    inp = grpcclient.InferInput("input", [1, 1, 8, 8], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float32))
    assert client.infer("digits", [inp]).as_numpy("logits").shape == (1, 10)
    assert metric(url, "twinserve_gateway_requests_total") >= 16  # summed over both workers


def test_sigterm_under_load_goes_unready_then_drains_losing_nothing(gateway_process: Gateway) -> None:
    url, proc = gateway_process.url, gateway_process.proc
    load = Load(url)
    threads = [threading.Thread(target=load.balancer, daemon=True)]
    threads += [threading.Thread(target=load.client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    assert wait_for(lambda: load.ok >= 20, timeout=30)
    load.draining.set()
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    # the balancer sees not-ready before the drain delay ends and stops sending; the gateway still serves meanwhile
    assert wait_for(lambda: not load.sending.is_set(), timeout=DRAIN_DELAY_S)
    unready_after = time.monotonic() - t0
    assert load.stopped_by == "503", load.stopped_by  # readiness turned it away, not a closed listener
    assert requests.post(url + "/v2/models/digits/infer", json=BODY, timeout=30).status_code == 200
    out = proc.communicate(timeout=40)[0].decode()
    for t in threads:
        t.join(35)
    assert proc.returncode == 0, out[-3000:]
    assert time.monotonic() - t0 >= DRAIN_DELAY_S - 0.1, "the drain delay was not honoured"
    assert unready_after < DRAIN_DELAY_S  # not-ready came while requests were still being served
    assert not load.lost, load.lost[:5]
    assert load.ok >= 20
    with pytest.raises(requests.ConnectionError):  # and then it is gone
        requests.get(url + "/v2/health/live", timeout=2)
