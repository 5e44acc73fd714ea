"""The inference fast path (gateway/fastpath.py) answers exactly as the FastAPI routes behind it would.

Each request is sent twice on the running gateway's loop: once into the fast path layer, once straight into the
FastAPI stack it sits in front of (where the same paths are registered as Starlette routes); status, body and
headers must agree. Requests over real HTTP then check the fast path is the one that serves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import requests
from gateway_harness import FaultBackend, Running, fault_settings, serve

from gateway.fastpath import InferenceFastPath

X = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8) / 64
V2 = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": X.reshape(-1).tolist()}]}
V2_BINARY_OUT = {**V2, "parameters": {"binary_data_output": True}}
TF_ROWS = {"instances": X.tolist()}
IGNORED = {"date", "server", "server-timing", "x-request-id"}  # differ between any two answers


Answer = tuple[int, dict[str, str], bytes]


async def call(app: Any, path: str, body: bytes, headers: dict[str, str], gw: Running) -> Answer:
    """One POST through an ASGI layer of `gw`'s app, collected."""
    scope = {
        "app": gw.app,  # as Starlette sets it before its middleware
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], {k: v for k, v in out["headers"].items() if k not in IGNORED}, out["body"]


def fast_layer(gw: Running) -> InferenceFastPath:
    layer = gw.app.middleware_stack
    while not isinstance(layer, InferenceFastPath):
        layer = layer.app
    return layer


CASES = [
    ("/v2/models/digits/infer", V2, {}),
    ("/v2/models/digits/versions/1/infer", V2, {"X-Backend": "tfserving"}),
    ("/v2/models/digits/infer", V2_BINARY_OUT, {}),
    ("/v1/models/digits:predict", TF_ROWS, {}),
    ("/v1/models/digits/versions/1:predict", {"inputs": X.tolist()}, {}),
    ("/v2/models/digits/infer", {"inputs": []}, {}),  # 400
    ("/v2/models/digits/infer", b'{"inputs": [', {}),  # 400, not JSON
    ("/v2/models/digits/infer", V2, {"X-Backend": "onnx"}),  # 400, unknown backend
    ("/v2/models/nope/infer", V2, {}),  # 404
    ("/v2/models/digits/versions/9/infer", V2, {}),  # 404
    ("/v1/models/digits:predict", {"instances": [[1.0] * 63]}, {}),  # 400 naming the shape
    ("/v2/models/digits/infer", V2, {"Inference-Header-Content-Length": "x"}),  # 400
]


@pytest.mark.parametrize(("path", "doc", "headers"), CASES)
def test_fast_path_answers_as_the_routes_behind_it(
    backends: dict[str, FaultBackend], path: str, doc: Any, headers: dict[str, str]
) -> None:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with serve(fault_settings(), backends) as gw:
        fast = fast_layer(gw)
        headers = {"Content-Type": "application/json", **headers}
        via_fast = gw.run(call(fast, path, body, headers, gw))
        via_routes = gw.run(call(fast.app, path, body, headers, gw))
        assert via_fast == via_routes


def test_upstream_failure_renders_alike(backends: dict[str, FaultBackend]) -> None:
    with serve(fault_settings(), backends) as gw:
        backends["torchserve"].fail = True
        fast, body = fast_layer(gw), json.dumps(V2).encode()
        via_fast = gw.run(call(fast, "/v2/models/digits/infer", body, {}, gw))
        via_routes = gw.run(call(fast.app, "/v2/models/digits/infer", body, {}, gw))
        assert via_fast == via_routes and via_fast[0] == 502


def test_inference_is_served_by_the_fast_path(backends: dict[str, FaultBackend]) -> None:
    # Fails without the fast path: the FastAPI routes, emptied here, would answer 404.
    with serve(fault_settings(), backends) as gw:
        fast = fast_layer(gw)
        inference = {"/v2/models/{model}/infer", "/v1/models/{model}:predict"}
        gw.app.router.routes[:] = [r for r in gw.app.router.routes if getattr(r, "path", "") not in inference]
        r = requests.post(gw.url + "/v2/models/digits/infer", json=V2, headers={"X-Request-ID": "fast-1"}, timeout=10)
        assert r.status_code == 200 and r.headers["X-Request-ID"] == "fast-1" and r.headers["X-Backend"]
        assert requests.post(gw.url + "/v1/models/digits:predict", json=TF_ROWS, timeout=10).status_code == 200
        assert gw.run(call(fast.app, "/v2/models/digits/infer", json.dumps(V2).encode(), {}, gw))[0] == 404


def test_metrics_are_recorded_after_the_answer_is_sent(backends: dict[str, FaultBackend]) -> None:
    """The request's and the upstream call's metrics are bookkept once the answer has gone to the socket (the
    loop's next turn), never between the answer and its client; they are there right after."""
    labels = {"model": "digits", "backend": "torchserve", "protocol": "rest", "status_class": "2xx"}

    def counted(gw: Running) -> tuple[float, float]:
        registry = gw.app.state.metrics.registry
        requests_ = registry.get_sample_value("twinserve_gateway_requests_total", labels) or 0.0
        upstream = registry.get_sample_value(
            "twinserve_gateway_upstream_duration_seconds_count",
            {"model": "digits", "backend": "torchserve", "outcome": "ok"},
        )
        return requests_, upstream or 0.0

    async def one(gw: Running) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        before = counted(gw)
        at_answer: list[tuple[float, float]] = []
        body = json.dumps(V2).encode()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                at_answer.append(counted(gw))

        scope = {"type": "http", "method": "POST", "path": "/v2/models/digits/infer", "root_path": "", "headers": []}
        await fast_layer(gw)(scope, receive, send)
        await asyncio.sleep(0)
        return before, at_answer[0], counted(gw)

    with serve(fault_settings(), backends) as gw:
        before, at_answer, after = gw.run(one(gw))
    assert at_answer == before
    assert after == (before[0] + 1, before[1] + 1)
