"""The inference lane (gateway/lane.py): plain inference POSTs skip ASGI and answer exactly as ASGI would; every
other request still goes through ASGI; keep-alive, `Connection: close`, pipelining, large bodies, clients that
leave and failures behave as uvicorn's own cycle does.

Every request here goes over a real socket to a gateway served as `python -m gateway` serves it (gateway_harness:
uvicorn with gateway.server.config_for). Which way a request went is read off uvicorn's ASGI entry
(RequestResponseCycle.run_asgi), wrapped to count its calls and then run as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from gateway_harness import FaultBackend, Running, fault_settings, serve
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

import gateway.lane
from gateway.settings import Settings

X = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8) / 64
V2 = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": X.reshape(-1).tolist()}]}
IGNORED = {b"date", b"server-timing", b"x-request-id"}  # differ between any two answers
KEY = "lane-test-key"


@pytest.fixture
def via_asgi(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that went through ASGI, in order."""
    paths: list[str] = []
    run_asgi = RequestResponseCycle.run_asgi

    async def counted(self: RequestResponseCycle, app: Any) -> None:
        paths.append(self.scope["path"])
        await run_asgi(self, app)

    monkeypatch.setattr(RequestResponseCycle, "run_asgi", counted)
    return paths


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[list[logging.LogRecord]]:
    """The gateway's error records while the test runs (its loggers do not propagate to pytest's capture)."""
    kept = Kept()
    logger = logging.getLogger("gateway")
    logger.addHandler(kept)
    yield kept.records
    logger.removeHandler(kept)


@pytest.fixture
def gw(backends: dict[str, FaultBackend]) -> Iterator[Running]:
    with serve(fault_settings(), backends) as running:
        yield running


def post(path: str, body: bytes, *extra: str, version: str = "1.1", length: int | None = None) -> bytes:
    """A POST as raw bytes, its body framed by Content-Length (`length`, else the body's) unless `extra` frames it
    otherwise."""
    chunked = any(h.lower().startswith("transfer-encoding") for h in extra)
    framing = [] if chunked else [f"Content-Length: {len(body) if length is None else length}"]
    head = [f"POST {path} HTTP/{version}", "Host: t", "Content-Type: application/json", *framing, *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    """`body` in chunked transfer coding, as two chunks."""
    half = len(body) // 2
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:])) + b"0\r\n\r\n"


class Conn:
    """One keep-alive connection reading whole responses (framed by Content-Length)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """The next response: status, headers (lowercase names), body."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = int(headers[b"content-length"])
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def interim(self) -> bytes:
        """The status line of the next head that has no body (an interim `100 Continue`)."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head.split(b"\r\n")[0]

    def closed_by_server(self) -> bool:
        """Whether the server closes the connection (nothing more arrives before the end)."""
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def exchange(port: int, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    conn = Conn(port)
    try:
        conn.send(request)
        return conn.response()
    finally:
        conn.close()


def comparable(answer: tuple[int, dict[bytes, bytes], bytes]) -> tuple[int, dict[bytes, bytes], bytes]:
    status, headers, body = answer
    return status, {k: v for k, v in headers.items() if k not in IGNORED}, body


CASES = [
    ("/v2/models/digits/infer", json.dumps(V2).encode(), ()),
    ("/v2/models/digits/versions/1/infer", json.dumps(V2).encode(), ("X-Backend: tfserving",)),
    ("/v2/models/digits/infer", json.dumps({**V2, "parameters": {"binary_data_output": True}}).encode(), ()),
    ("/v1/models/digits:predict", json.dumps({"instances": X.tolist()}).encode(), ()),
    ("/v2/models/digits/infer", b'{"inputs": [', ()),  # 400, not JSON
    ("/v2/models/digits/infer", json.dumps({"inputs": []}).encode(), ()),  # 400
    ("/v2/models/nope/infer", json.dumps(V2).encode(), ()),  # 404
    ("/v2/models/digits/infer", json.dumps(V2).encode(), ("X-Backend: onnx",)),  # 400, unknown backend
]


@pytest.mark.parametrize(("path", "body", "extra"), CASES)
def test_the_lane_answers_as_asgi_does(
    gw: Running, via_asgi: list[str], path: str, body: bytes, extra: tuple[str, ...]
) -> None:
    lane = exchange(gw.port, post(path, body, *extra))
    assert via_asgi == []  # a plain POST to an inference path never met ASGI
    asgi = exchange(gw.port, post(path, chunked(body), *extra, "Transfer-Encoding: chunked"))
    assert via_asgi == [path]  # the same request with a chunked body did
    assert comparable(lane) == comparable(asgi)
    assert lane[1][b"x-request-id"] and b"date" in lane[1] and b"server" not in lane[1]


def test_a_backend_failure_renders_alike(gw: Running, backends: dict[str, FaultBackend], via_asgi: list[str]) -> None:
    backends["torchserve"].fail = True
    body = json.dumps(V2).encode()
    lane = exchange(gw.port, post("/v2/models/digits/infer", body))
    asgi = exchange(gw.port, post("/v2/models/digits/infer", chunked(body), "Transfer-Encoding: chunked"))
    assert lane[0] == 502 and comparable(lane) == comparable(asgi) and len(via_asgi) == 1


def test_the_request_id_is_echoed_and_reaches_the_backend(gw: Running, backends: dict[str, FaultBackend]) -> None:
    status, headers, _ = exchange(
        gw.port, post("/v2/models/digits/infer", json.dumps(V2).encode(), "X-Request-ID: r-9")
    )
    assert status == 200 and headers[b"x-request-id"] == b"r-9"
    assert backends["torchserve"].request_ids == ["r-9"]


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (post("/v2/models/digits/infer", json.dumps(V2).encode(), "Expect: 100-continue"), 200),
        (post("/v2/models/digits/infer", json.dumps(V2).encode(), version="1.0"), 200),
        (post("/v2/models/dig%69ts/infer", json.dumps(V2).encode()), 200),  # the path as unquoted
        (post("/v2/models/digits/infer", b"", length=70_000_000), 413),  # refused from Content-Length, never read
        (post("/v2/models/digits/infer", json.dumps(V2).encode(), "X-Request-ID: a", "X-Pad: " + "p" * 70_000), 431),
    ],
    ids=["expect-100-continue", "http-1.0", "percent-escaped-path", "body-too-large", "headers-too-large"],
)
def test_what_the_lane_leaves_goes_through_asgi(gw: Running, via_asgi: list[str], request_: bytes, status: int) -> None:
    conn = Conn(gw.port)
    try:
        conn.send(request_)
        if b"100-continue" in request_:
            assert conn.interim() == b"HTTP/1.1 100 Continue"
        got, headers, body = conn.response()
    finally:
        conn.close()
    assert got == status, body
    assert len(via_asgi) == 1 and headers[b"x-request-id"]


def test_api_keys_are_the_edges_on_both_ways(backends: dict[str, FaultBackend], via_asgi: list[str]) -> None:
    base = fault_settings()
    settings = Settings(
        routes_file=None,
        routes=base.routes.model_dump(),
        server=base.server.model_dump(),
        auth={"api_keys": [KEY]},
    )
    body = json.dumps(V2).encode()
    with serve(settings, backends) as gw:
        refused = exchange(gw.port, post("/v2/models/digits/infer", body))
        wrong = exchange(gw.port, post("/v2/models/digits/infer", body, "Authorization: Bearer nope"))
        assert (refused[0], wrong[0], len(via_asgi)) == (401, 403, 2)  # refusals are rendered by the edge
        ok = exchange(gw.port, post("/v2/models/digits/infer", body, f"Authorization: Bearer {KEY}"))
        assert ok[0] == 200 and len(via_asgi) == 2  # an admitted request took the lane


def test_keep_alive_then_close(gw: Running, via_asgi: list[str]) -> None:
    body = json.dumps(V2).encode()
    conn = Conn(gw.port)
    try:
        for _ in range(3):  # one connection, three answers
            conn.send(post("/v2/models/digits/infer", body))
            status, headers, _ = conn.response()
            assert status == 200 and b"connection" not in headers
        conn.send(post("/v2/models/digits/infer", body, "Connection: close"))
        status, headers, _ = conn.response()
        assert status == 200 and headers[b"connection"] == b"close"
        assert conn.closed_by_server()
    finally:
        conn.close()
    assert via_asgi == []


def test_pipelined_requests_are_answered_in_order(gw: Running, via_asgi: list[str]) -> None:
    body = json.dumps(V2).encode()
    conn = Conn(gw.port)
    try:
        conn.send(
            post("/v2/models/digits/versions/1/infer", body, "X-Request-ID: p1")
            + post("/v1/models/digits:predict", json.dumps({"instances": X.tolist()}).encode(), "X-Request-ID: p2")
            + b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Request-ID: p3\r\n\r\n"
            + post("/v2/models/digits/infer", body, "X-Request-ID: p4")
        )
        answers = [conn.response() for _ in range(4)]
    finally:
        conn.close()
    assert [(status, headers[b"x-request-id"]) for status, headers, _ in answers] == [
        (200, b"p1"),
        (200, b"p2"),
        (200, b"p3"),
        (200, b"p4"),
    ]
    # the first took the lane; what came in behind it while it was answered was queued by uvicorn, as ever
    assert "/v2/models/digits/versions/1/infer" not in via_asgi and "/v2/health/live" in via_asgi


def test_a_large_body_is_read_whole(gw: Running, via_asgi: list[str]) -> None:
    """Past uvicorn's high-water mark (64 KiB) the protocol pauses reading until the lane asks for the body."""
    rows = np.random.default_rng(7).random((400, 1, 8, 8), dtype=np.float32)
    doc = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}
    body = json.dumps(doc).encode()
    assert len(body) > 4 * 65536
    status, _, answer = exchange(gw.port, post("/v2/models/digits/infer", body))
    assert status == 200 and via_asgi == []
    logits = json.loads(answer)["outputs"][0]
    assert logits["shape"] == [400, 10]
    np.testing.assert_allclose(np.asarray(logits["data"]).reshape(400, 10), rows.reshape(400, -1)[:, :10], rtol=1e-6)


def test_a_client_gone_before_its_answer_leaves_nothing_behind(
    gw: Running, backends: dict[str, FaultBackend], errors: list[logging.LogRecord]
) -> None:
    backend = backends["torchserve"]
    backend.delay_s = 0.5
    conn = Conn(gw.port)
    conn.send(post("/v2/models/digits/infer", json.dumps(V2).encode()))
    deadline = time.monotonic() + 5
    while backend.calls == 0:  # wait until the backend works on it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    conn.close()  # gone while the backend works
    gw.run(_settle(gw))  # its task ends, its answer with nowhere to go
    assert errors == []
    backend.delay_s = 0.0
    assert exchange(gw.port, post("/v2/models/digits/infer", json.dumps(V2).encode()))[0] == 200
    assert backend.calls == 2


async def _settle(gw: Running) -> None:
    """Wait (at most 2 s) until the server has no request task left."""
    for _ in range(200):
        if not gw.server.server_state.tasks:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("request tasks still running")


def test_a_failure_in_the_lane_is_a_500_and_a_closed_connection(
    gw: Running, monkeypatch: pytest.MonkeyPatch, errors: list[logging.LogRecord]
) -> None:
    def broken(*args: Any) -> list[tuple[bytes, bytes]]:
        raise RuntimeError("injected")

    monkeypatch.setattr(gateway.lane, "head_fields", broken)
    conn = Conn(gw.port)
    try:
        conn.send(post("/v2/models/digits/infer", json.dumps(V2).encode()))
        status, headers, body = conn.response()
        assert (status, headers[b"connection"], body) == (500, b"close", b"Internal Server Error")
        assert conn.closed_by_server()
    finally:
        conn.close()
    assert [r.getMessage() for r in errors] == ["inference lane failed"]
