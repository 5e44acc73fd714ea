"""uvicorn's HTTP protocol as the gateway configures it: each response's head goes out with its body, in one write."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from gateway_harness import fault_settings

from gateway.server import HeadWithBody, config_for


class Recorder:
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def held(method: str = "GET") -> tuple[HeadWithBody, Recorder, Any]:
    transport, cycle = Recorder(), SimpleNamespace(scope={"method": method}, response_started=False)
    return HeadWithBody(transport, cycle), transport, cycle  # type: ignore[arg-type]


def test_head_is_written_with_the_first_body_chunk_only() -> None:
    wrapper, transport, cycle = held()
    wrapper.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response starts: at once
    cycle.response_started = True
    wrapper.write(b"HEAD")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    wrapper.write(b"body-1")
    wrapper.write(b"body-2")
    assert transport.writes[1:] == [b"HEADbody-1", b"body-2"]
    assert not wrapper.is_closing()  # everything else is the real transport's


def test_head_requests_and_failures_still_send_the_head() -> None:
    wrapper, transport, cycle = held("HEAD")
    cycle.response_started = True
    wrapper.write(b"HEAD")  # a HEAD response has no body write: the head cannot wait for one
    assert transport.writes == [b"HEAD"]
    wrapper, transport, cycle = held()
    cycle.response_started = True
    wrapper.write(b"HEAD")
    wrapper.close()  # the app failed after starting its response: uvicorn closes the connection
    assert transport.writes == [b"HEAD"] and transport.closed


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/ok answers, /stream answers in two chunks, /fail raises after starting its response, /client names the
    peer the app was given."""
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    if scope["path"] == "/client":  # who the app believes it talks to
        peer = scope["client"][0].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(peer))]})
        await send({"type": "http.response.body", "body": peer})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [*headers, (b"content-length", b"2")]})
    if scope["path"] == "/fail":
        raise RuntimeError("failed after the response started")
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    config = config_for(fault_settings(), app, port=0, loop="asyncio", log_level="critical", lifespan="off")
    assert config.http == "gateway.lane:LaneProtocol"  # with no lane on this app, the rest of it
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def exchange(port: int, request: bytes) -> bytes:
    """Send one request on a fresh connection; everything received until the server closes (or 2 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return data


@pytest.mark.parametrize(
    ("request_line", "expected_tail"),
    [
        (b"GET /ok HTTP/1.1", b"\r\n\r\nok"),
        (b"HEAD /ok HTTP/1.1", b"connection: close\r\n\r\n"),
        (b"GET /stream HTTP/1.1", b"\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n"),
        (b"GET /fail HTTP/1.1", b"connection: close\r\n\r\n"),  # head, then the connection closes
    ],
)
def test_real_server_answers_completely(port: int, request_line: bytes, expected_tail: bytes) -> None:
    data = exchange(port, request_line + b"\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(expected_tail), data


def test_forwarded_headers_do_not_rewrite_the_peer(port: int) -> None:
    """uvicorn's proxy-headers layer is off (no reader of the address; an IP parse per request): a client on
    loopback, uvicorn's default trusted proxy, cannot make the app see another address."""
    answer = exchange(
        port, b"GET /client HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    assert answer.endswith(b"\r\n\r\n127.0.0.1")


def test_answers_carry_a_date_but_do_not_name_the_server(port: int) -> None:
    head = exchange(port, b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").split(b"\r\n\r\n")[0].lower()
    assert b"\r\ndate: " in head and b"\r\nserver:" not in head
