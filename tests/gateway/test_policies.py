"""Policies, limits and settings taking effect, end to end through the app, with injected faults."""

from __future__ import annotations

import threading
import time

import numpy as np
import requests
from gateway_harness import FaultBackend, fault_settings, serve

from gateway.settings import BackendSettings, Settings

X = np.ones((1, 1, 8, 8), dtype=np.float32)
BODY = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": X.reshape(-1).tolist()}]}


def infer(gw, **headers: str) -> requests.Response:  # type: ignore[no-untyped-def]
    return requests.post(gw.url + "/v2/models/digits/infer", json=BODY, headers=headers, timeout=10)


def metric(gw, line_start: str) -> float:  # type: ignore[no-untyped-def]
    text = requests.get(gw.url + "/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def test_route_default_backend_setting(backends: dict[str, FaultBackend]) -> None:
    with serve(fault_settings(backend="tfserving"), backends) as gw:
        assert infer(gw).headers["X-Backend"] == "tfserving"


def test_failover_on_5xx_and_breaker_opens(backends: dict[str, FaultBackend]) -> None:
    settings = fault_settings(policy="failover")
    settings.breaker.failures = 2
    settings.breaker.cooldown_s = 60
    settings.health.interval_s = 60
    backends["torchserve"].fail = True
    with serve(settings, backends) as gw:
        for _ in range(3):
            r = infer(gw)
            assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving"
        assert backends["torchserve"].calls == 2  # the third skipped it: circuit open after 2 failures
        assert metric(gw, 'twinserve_gateway_circuit_state{backend="torchserve"}') == 2
        assert metric(gw, "twinserve_gateway_failovers_total") == 2
        r = infer(gw, **{"X-Backend": "torchserve"})
        assert r.status_code == 503 and "circuit open" in r.json()["error"]


def test_pin_upstream_failure_is_502_naming_backend(backends: dict[str, FaultBackend]) -> None:
    backends["torchserve"].fail = True
    with serve(fault_settings(), backends) as gw:
        r = infer(gw)
        assert r.status_code == 502 and r.json()["error"].startswith("torchserve:")
        assert r.headers["X-Backend"] == "torchserve"


def test_half_open_probe_closes_after_cooldown(backends: dict[str, FaultBackend]) -> None:
    settings = fault_settings()
    settings.breaker.failures = 1
    settings.breaker.cooldown_s = 60  # never over by itself while the test runs, however slow the machine
    settings.health.interval_s = 60
    with serve(settings, backends) as gw:
        backends["torchserve"].fail = True
        assert infer(gw).status_code == 502
        assert infer(gw).status_code == 503  # open: not even tried
        backends["torchserve"].fail = False
        gw.plane.upstreams.breakers["torchserve"].opened_at -= 60  # the cool-down is over, without waiting for it
        assert infer(gw).status_code == 200  # half-open probe succeeded
        assert metric(gw, 'twinserve_gateway_circuit_state{backend="torchserve"}') == 0


def test_timeout_is_504_and_failover_on_timeout(backends: dict[str, FaultBackend]) -> None:
    backends["torchserve"].delay_s = 30.0
    with serve(fault_settings(timeout_s=0.3), backends) as gw:
        t0 = time.monotonic()
        r = infer(gw)
        # it gave up at its 0.3 s deadline instead of waiting for the 30 s answer; 10 s is a loaded box's margin
        assert r.status_code == 504 and time.monotonic() - t0 < 10
    backends["torchserve"].settings = BackendSettings(timeout_s=0.2)
    with serve(fault_settings(policy="failover", timeout_s=2), backends) as gw:
        r = infer(gw)
        assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving"


def test_overload_is_429_with_retry_after(backends: dict[str, FaultBackend]) -> None:
    backends["torchserve"].settings = BackendSettings(max_in_flight=1, max_queue=0, timeout_s=5)
    backends["torchserve"].delay_s = 3.0  # holds the only slot while the second request comes
    settings = fault_settings()
    settings.limits.retry_after_s = 7
    with serve(settings, backends) as gw:
        slow = threading.Thread(target=infer, args=(gw,))
        slow.start()
        deadline = time.monotonic() + 10
        while backends["torchserve"].calls < 1:  # the slot is taken: wait for that, not for a guessed time
            assert time.monotonic() < deadline
            time.sleep(0.01)
        r = infer(gw)
        slow.join()
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert metric(gw, 'twinserve_gateway_rejections_total{reason="overloaded"}') == 1


def test_split_weights_and_sticky(backends: dict[str, FaultBackend]) -> None:
    with serve(fault_settings(policy="split", weights={"torchserve": 0, "tfserving": 1}), backends) as gw:
        assert {infer(gw).headers["X-Backend"] for _ in range(5)} == {"tfserving"}
    with serve(fault_settings(policy="split", sticky_header="X-User"), backends) as gw:
        seen = {infer(gw, **{"X-User": "alice"}).headers["X-Backend"] for _ in range(6)}
        assert len(seen) == 1
        spread = {infer(gw, **{"X-User": f"user-{i}"}).headers["X-Backend"] for i in range(30)}
        assert spread == {"torchserve", "tfserving"}


def test_shadow_compares_and_never_delays(backends: dict[str, FaultBackend]) -> None:
    settings = fault_settings(policy="shadow")
    with serve(settings, backends) as gw:
        r = infer(gw)
        assert r.status_code == 200 and r.headers["X-Backend"] == "torchserve"
        deadline = time.monotonic() + 5
        while metric(gw, "twinserve_gateway_shadow_comparisons_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(gw, "twinserve_gateway_shadow_comparisons_total") == 1
        assert metric(gw, 'twinserve_gateway_shadow_mismatches_total{kind="tolerance",model="digits"}') == 1
        assert metric(gw, 'twinserve_gateway_shadow_max_abs_diff_count{model="digits"}') == 1
    backends["tfserving"].delay_s = 30.0  # a slow shadow must not slow the primary; the full queue drops
    settings = fault_settings(policy="shadow")
    settings.shadow.queue_size = 1
    settings.shadow.workers = 1
    with serve(settings, backends) as gw:
        t0 = time.monotonic()
        for _ in range(4):
            assert infer(gw).status_code == 200
        assert time.monotonic() - t0 < 15  # waiting for even one 30 s shadow answer would exceed this by far
        assert metric(gw, 'twinserve_gateway_shadow_dropped_total{model="digits",reason="queue_full"}') >= 1


def test_body_limit_413_before_reading(backends: dict[str, FaultBackend]) -> None:
    settings = fault_settings()
    settings.limits.max_body_bytes = 1000
    with serve(settings, backends) as gw:
        r = requests.post(gw.url + "/v2/models/digits/infer", data=b"x" * 5000)
        assert r.status_code == 413
        r = requests.post(gw.url + "/v2/models/digits/infer", data=iter([b"x" * 600, b"x" * 600]))  # chunked
        assert r.status_code == 413
        assert infer(gw).status_code == 200


def test_api_keys_from_setting_and_file(backends: dict[str, FaultBackend], tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "keys"
    key_file.write_text("# comment\nfile-key\n")
    settings = fault_settings()
    settings.auth.api_keys = ["env-key"]  # type: ignore[list-item]
    settings.auth.api_key_file = key_file
    settings = Settings.model_validate(settings.model_dump())
    with serve(settings, backends) as gw:
        assert requests.get(gw.url + "/v2/health/ready").status_code == 200
        assert infer(gw).status_code == 401
        assert infer(gw, Authorization="Bearer wrong").status_code == 403
        assert infer(gw, Authorization="Bearer env-key").status_code == 200
        assert infer(gw, Authorization="Bearer file-key").status_code == 200


def test_edge_refusals_in_order_and_each_carries_the_request_id(backends: dict[str, FaultBackend]) -> None:
    """One layer checks the key, then the header size, then the declared body size; every answer echoes the id."""
    settings = fault_settings()
    settings.auth.api_keys = ["k"]  # type: ignore[list-item]
    settings.limits.max_header_bytes = 2048
    settings.limits.max_body_bytes = 1000
    settings = Settings.model_validate(settings.model_dump())
    big = {"X-Filler": "y" * 4000, "X-Request-ID": "edge-1"}
    with serve(settings, backends) as gw:
        url = gw.url + "/v2/models/digits/infer"
        r = requests.post(url, data=b"x" * 5000, headers=big)
        assert (r.status_code, r.headers["X-Request-ID"]) == (401, "edge-1")
        r = requests.post(url, data=b"x" * 5000, headers={**big, "Authorization": "Bearer k"})
        assert (r.status_code, r.headers["X-Request-ID"], r.headers["Connection"]) == (431, "edge-1", "close")
        r = requests.post(url, data=b"x" * 5000, headers={"Authorization": "Bearer k", "X-Request-ID": "edge-2"})
        assert (r.status_code, r.headers["X-Request-ID"]) == (413, "edge-2")
        r = infer(gw, Authorization="Bearer k", **{"X-Request-ID": "i" * 200})
        assert r.status_code == 200 and r.headers["X-Request-ID"] == "i" * 128


def test_stacks_disagreeing_mark_model_not_ready(backends: dict[str, FaultBackend]) -> None:
    from gateway.metadata import ModelMetadata, TensorMeta

    meta = backends["tfserving"].meta
    backends["tfserving"].meta = ModelMetadata(
        meta.name, meta.versions, "x", (TensorMeta("input", "FP32", (-1, 3, 8, 8)),), meta.outputs
    )
    with serve(fault_settings(), backends) as gw:
        assert requests.get(gw.url + "/v2/models/digits/ready").status_code == 503
        r = infer(gw)
        assert r.status_code == 503 and "stacks disagree" in r.json()["error"]


def test_failover_leaves_the_fallback_time_when_the_primary_hangs(backends: dict[str, FaultBackend]) -> None:
    # A stopped container's address drops packets: nothing refuses, the call just hangs. The primary's own timeout
    # (30 s) is longer than the route's deadline (2 s), so only the route can leave the fallback time to answer.
    backends["torchserve"].settings = BackendSettings(timeout_s=30)
    backends["torchserve"].delay_s = 30.0
    with serve(fault_settings(policy="failover", timeout_s=2), backends) as gw:
        r = infer(gw)  # the primary gets half the deadline by default, then the fallback
        assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving", r.text
        assert metric(gw, "twinserve_gateway_failovers_total") == 1
    with serve(fault_settings(policy="failover", timeout_s=2, failover_after_s=1.9), backends) as gw:
        backends["tfserving"].delay_s = 0.5  # 0.1 s left after the primary's 1.9 s: the fallback cannot make it
        assert infer(gw).status_code == 504
