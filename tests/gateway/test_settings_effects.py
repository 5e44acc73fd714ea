"""Each of these settings changes what the gateway does: signature_name, health_interval_s, health_failures,
shadow_tolerance,
drain_delay_s, graceful_timeout_s, the logging settings and the gRPC port (or none) from the environment."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from aiohttp import web
from gateway_harness import FaultBackend, fault_settings, serve

from gateway.app import create_app
from gateway.backends.tfserving import TFServingBackend
from gateway.server import DrainingServer, config_for
from gateway.settings import BackendSettings, Settings, TFServingSettings
from gateway.telemetry import configure_logging
from gateway.tensors import InferTensor

BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [1.0] * 64}]}


def infer(url: str, **headers: str) -> requests.Response:
    return requests.post(url + "/v2/models/digits/infer", json=BODY, headers=headers, timeout=10)


def metric(url: str, start: str) -> float:
    lines = requests.get(url + "/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(start))


@pytest.mark.parametrize("signature", ["serving_default", "other_sig"])
def test_signature_name_is_sent_to_tf_serving(signature: str) -> None:
    seen: list[str] = []

    async def predict(request: web.Request) -> web.Response:
        seen.append((await request.json())["signature_name"])
        return web.json_response({"outputs": {"logits": [[0.0] * 10]}})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/v1/models/digits:predict", predict)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        backend = TFServingBackend(
            TFServingSettings(protocol="rest", rest_url=f"http://127.0.0.1:{port}", signature_name=signature)
        )
        await backend.start()
        try:
            x = InferTensor.from_numpy("input", np.zeros((1, 1, 8, 8), np.float32))
            await backend.infer("digits", None, [x], timeout_s=5, request_id="t")
            assert backend._spec("digits", "1").signature_name == signature  # and on gRPC
        finally:
            await backend.close()
            await runner.cleanup()

    asyncio.run(scenario())
    assert seen == [signature]


def _becomes(condition: Any, timeout_s: float = 30.0) -> bool:
    """Poll until `condition()` holds (True) or `timeout_s` passes (False): a bound only a hang reaches."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(("interval", "notices"), [(0.1, True), (60.0, False)])
def test_health_interval_s(backends: dict[str, FaultBackend], interval: float, notices: bool) -> None:
    settings = fault_settings()
    settings.health.interval_s = interval
    with serve(settings, backends) as gw:
        assert requests.get(gw.url + "/v2/models/digits/ready").status_code == 200
        backends["torchserve"].health = False  # e.g. its worker crash-loops while /ping says Healthy
        if notices:  # 3 failed probes at 0.1 s: wait for the property, not for a guessed time
            assert _becomes(lambda: requests.get(gw.url + "/v2/models/digits/ready").status_code == 503)
        else:  # a 60 s interval cannot probe again within this window; a slow machine only probes less
            time.sleep(0.6)
            assert requests.get(gw.url + "/v2/models/digits/ready").status_code == 200
        if notices:  # and it comes back by itself once healthy again
            backends["torchserve"].health = True
            assert _becomes(lambda: requests.get(gw.url + "/v2/health/ready").status_code == 200)


@pytest.mark.parametrize(("failures", "routed_away"), [(1, True), (1000, False)])
def test_health_failures(backends: dict[str, FaultBackend], failures: int, routed_away: bool) -> None:
    settings = fault_settings()
    settings.health.interval_s = 0.05
    settings.health.failures = failures
    with serve(settings, backends) as gw:
        assert requests.get(gw.url + "/v2/models/digits/ready").status_code == 200
        backends["torchserve"].health = False

        def status() -> int:
            return requests.get(gw.url + "/v2/models/digits/ready", headers={"X-Backend": "torchserve"}).status_code

        if routed_away:  # one failed round is enough: wait for it, however slow the machine
            assert _becomes(lambda: status() == 503)
        else:  # at most ~12 rounds in 0.6 s, a slow machine fewer: far from 1000
            time.sleep(0.6)
            assert status() == 200


@pytest.mark.parametrize(("tolerance", "mismatches"), [(1e-3, 1), (1.0, 0)])
def test_shadow_tolerance(backends: dict[str, FaultBackend], tolerance: float, mismatches: int) -> None:
    settings = fault_settings(policy="shadow")
    settings.shadow.tolerance = tolerance  # the fault backends differ by 0.5, same arg-max
    with serve(settings, backends) as gw:
        assert infer(gw.url).status_code == 200
        deadline = time.monotonic() + 5
        while metric(gw.url, "twinserve_gateway_shadow_comparisons_total") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert metric(gw.url, "twinserve_gateway_shadow_mismatches_total") == mismatches


class Threaded:
    """A DrainingServer (what `python -m gateway` runs) in a thread; `terminate` is what SIGTERM calls."""

    def __init__(self, settings: Any, backends: dict[str, FaultBackend]) -> None:
        app = create_app(settings, backends=backends)
        config = config_for(settings, app, port=0, loop="asyncio", http="h11", log_level="warning")
        self.server = DrainingServer(config, settings.server.drain_delay_s)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def terminate(self) -> None:
        import signal

        self.server.handle_exit(signal.SIGTERM, None)


@pytest.mark.parametrize(("graceful", "completes"), [(5.0, True), (0.2, False)])
def test_drain_delay_then_graceful_timeout(backends: dict[str, FaultBackend], graceful: float, completes: bool) -> None:
    settings = fault_settings()
    # Margins for a loaded 2-core machine: the client has the whole 2 s drain delay to get its request accepted,
    # and its 3 s answer still outlasts the listener (closed at 2 s) plus the short grace (0.2 s) in any case.
    settings.server.drain_delay_s = 2.0
    settings.server.graceful_timeout_s = graceful
    gw = Threaded(settings, backends)
    backends["torchserve"].settings = BackendSettings(timeout_s=10)
    backends["torchserve"].delay_s = 3.0  # under its timeout, longer than the drain delay
    outcome: dict[str, Any] = {}

    def slow() -> None:
        try:
            outcome["status"] = infer(gw.url).status_code
        except requests.ConnectionError as err:
            outcome["error"] = err

    t0 = time.monotonic()
    gw.terminate()
    assert requests.get(gw.url + "/v2/health/ready", timeout=2).status_code == 503  # not ready at once
    client = threading.Thread(target=slow)
    client.start()  # accepted during the drain delay, still in flight when the listener closes
    client.join(20)
    gw.thread.join(20)
    assert not gw.thread.is_alive()
    assert time.monotonic() - t0 >= 2.0  # the drain delay was honoured (a lower bound cannot flake)
    assert (outcome.get("status") == 200) is completes, outcome


@pytest.mark.parametrize("as_json", [True, False])
def test_logging_settings(capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    configure_logging("WARNING", as_json)
    log = logging.getLogger("gateway.test")
    log.info("hidden at WARNING")
    log.warning("shown", extra={"fields": {"model": "digits"}})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    if as_json:
        line = json.loads(err[0])
        assert line["msg"] == "shown" and line["level"] == "WARNING" and line["model"] == "digits"
    else:
        assert err[0] == "WARNING gateway.test shown"
    configure_logging("DEBUG", as_json)
    log.debug("now shown")
    assert "now shown" in capsys.readouterr().err
    configure_logging("INFO", True)


@pytest.mark.parametrize("grpc_env", ["none", "0"])
def test_grpc_port_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, backends: dict[str, FaultBackend], grpc_env: str
) -> None:
    """`TWINSERVE_SERVER__GRPC_PORT=none` runs REST only; a port number runs gRPC there (0: any free port)."""
    monkeypatch.setenv("TWINSERVE_SERVER__GRPC_PORT", grpc_env)
    settings = Settings(
        routes_file=None,
        routes={"models": {"digits": {"policy": "pin", "backend": "torchserve"}}},
        server={"host": "127.0.0.1", "port": 0},
    )
    with serve(settings, backends) as gw:
        assert infer(gw.url).status_code == 200
        if grpc_env == "none":
            assert settings.server.grpc_port is None and gw.grpc_port == 0  # no gRPC server started
        else:
            assert gw.grpc_port > 0
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{gw.grpc_port}")
            assert client.is_server_live()
