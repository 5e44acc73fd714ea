"""The gateway's upstream HTTP client (gateway/httpclient.py) against scripted servers on loopback.

The real servers (TorchServe, the TF side) reach it through every e2e test; the scripted server here exists to
make the upstream misbehave on cue: close an idle connection, close before answering, answer in chunks, until
EOF, with garbage, too much, or never.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway import httpclient
from gateway.httpclient import HTTPClient, HTTPClientError

Answer = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]
"""(request number, request head+body, writer) -> keep the connection open?"""


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Scripted:
    """A loopback HTTP/1.1 server whose answers a test writes; it records connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.eofs = 0

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionResetError):  # closed or aborted by the client
                    self.eofs += 1
                    return
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(len(self.requests), request, writer):
                    return
        finally:
            self.open_now -= 1
            writer.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def numbered_after(delay_s: float) -> Answer:
    """Answers `n<request number>` after `delay_s`, keeping the connection."""

    async def answer(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(delay_s)
        writer.write(ok(b"n%d" % n))
        return True

    return answer


async def echo(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(ok(request.split(b"\r\n\r\n", 1)[1]))
    return True


def test_sequential_requests_share_one_connection_and_arrive_intact() -> None:
    async def scenario() -> None:
        async with Scripted(echo) as server:
            client = HTTPClient(4)
            for i in range(20):
                body = b'{"instances": [[%d]]}' % i
                reply = await client.request("POST", server.url + "/v1/models/m:predict", body, {"X-Request-ID": "r"})
                assert (reply.status, reply.body) == (200, body)
            await client.close()
        assert server.connections == 1
        head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"POST /v1/models/m:predict HTTP/1.1"
        assert b"X-Request-ID: r" in head and f"Host: {server.url[7:]}".encode() in head

    run(scenario)


def test_a_chunked_answer_is_joined() -> None:
    async def chunked(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return True

    async def scenario() -> None:
        async with Scripted(chunked) as server:
            client = HTTPClient()
            assert (await client.request("GET", server.url + "/x")).body == b"hello world"
            assert (await client.request("GET", server.url + "/x")).body == b"hello world"
            await client.close()
        assert server.connections == 1

    run(scenario)


def test_an_answer_ended_by_closing_the_connection_is_read_whole() -> None:
    async def until_eof(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 100_000)
        await writer.drain()
        return False

    async def scenario() -> None:
        async with Scripted(until_eof) as server:
            client = HTTPClient()
            for _ in range(2):
                assert (await client.request("GET", server.url + "/")).body == b"x" * 100_000
            await client.close()
        assert server.connections == 2

    run(scenario)


def test_connection_close_is_honoured() -> None:
    async def closing(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(b"bye", b"Connection: close\r\n"))
        return True  # says close, keeps the socket open: only the header tells the client

    async def scenario() -> None:
        async with Scripted(closing) as server:
            client = HTTPClient()
            for _ in range(3):
                assert (await client.request("GET", server.url + "/")).body == b"bye"
            await client.close()
        assert server.connections == 3

    run(scenario)


def test_a_connection_the_upstream_closed_while_idle_is_not_reused() -> None:
    async def then_close(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(b"one"))
        await writer.drain()
        return False  # closes without saying so, as a server's keep-alive timeout does

    async def scenario() -> None:
        async with Scripted(then_close) as server:
            client = HTTPClient(1)
            await client.request("GET", server.url + "/")
            await asyncio.sleep(0.2)  # the close reaches the idle connection
            assert (await client.request("GET", server.url + "/")).body == b"one"
            await client.close()
        assert server.connections == 2 and len(server.requests) == 2  # no request lost on the dead connection

    run(scenario)


def test_a_connection_idle_for_longer_than_keepalive_is_closed_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpclient, "KEEPALIVE_S", 0.05)

    async def scenario() -> None:
        async with Scripted(echo) as server:
            client = HTTPClient()
            await client.request("GET", server.url + "/")
            await asyncio.sleep(0.1)
            await client.request("GET", server.url + "/")
            await client.close()
            await asyncio.sleep(0.05)
            assert server.connections == 2 and server.eofs == 2

    run(scenario)


def test_a_reused_connection_closed_before_answering_is_retried_once_on_a_new_one() -> None:
    async def drop_second(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False  # read the request, close without a byte: the keep-alive race
        writer.write(ok(b"n%d" % n))
        return True

    async def scenario() -> None:
        async with Scripted(drop_second) as server:
            client = HTTPClient(1)
            assert (await client.request("GET", server.url + "/")).body == b"n1"
            assert (await client.request("GET", server.url + "/")).body == b"n3"
            await client.close()
        assert server.connections == 2

    run(scenario)


@pytest.mark.parametrize(
    ("reply", "keep_open", "limit", "match"),
    [
        (b"", False, None, "closed the connection before answering"),  # a new connection: an error, not a retry
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part", False, None, "in the middle of its answer"),
        (b"SPDY/9 lol\r\n\r\n", True, None, "malformed HTTP answer"),
        (ok(b"y" * 5000), True, 4096, "over 4096 bytes"),
    ],
    ids=["closed-before-answering", "closed-mid-answer", "malformed", "too-large"],
)
def test_an_upstream_that_breaks_http_is_an_error_saying_how(
    reply: bytes, keep_open: bool, limit: int | None, match: str
) -> None:
    async def broken(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(reply)
        await writer.drain()
        return keep_open

    async def scenario() -> None:
        async with Scripted(broken) as server:
            client = HTTPClient(max_body=limit) if limit else HTTPClient()
            with pytest.raises(HTTPClientError, match=match):
                await client.request("POST", server.url + "/", b"{}")
            await client.close()
        assert len(server.requests) == 1  # sent once

    run(scenario)


def test_the_pool_holds_at_most_limit_connections_and_every_request_is_answered() -> None:
    async def scenario() -> None:
        async with Scripted(numbered_after(0.05)) as server:
            client = HTTPClient(2)
            replies = await asyncio.gather(*(client.request("GET", server.url + "/") for _ in range(7)))
            await client.close()
        assert sorted(r.body for r in replies) == sorted(b"n%d" % n for n in range(1, 8))
        assert server.most_open == 2

    run(scenario)


def test_a_cancelled_request_drops_its_connection_and_frees_its_slot() -> None:
    async def first_hangs(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            await asyncio.sleep(5)
        writer.write(ok(b"n%d" % n))
        return True

    async def scenario() -> None:
        async with Scripted(first_hangs) as server:
            client = HTTPClient(1)
            with pytest.raises(TimeoutError):
                await client.request("GET", server.url + "/", timeout_s=0.1)
            reply = await client.request("GET", server.url + "/", timeout_s=2)
            await client.close()
        assert reply.body == b"n2" and server.connections == 2  # the late answer to n1 never reaches anyone

    run(scenario)


def test_waiters_behind_a_cancelled_waiter_still_get_the_connection() -> None:
    async def scenario() -> None:
        async with Scripted(numbered_after(0.1)) as server:
            client = HTTPClient(1)
            first = asyncio.create_task(client.request("GET", server.url + "/"))
            await asyncio.sleep(0.02)
            doomed = asyncio.create_task(client.request("GET", server.url + "/", timeout_s=0.03))
            third = asyncio.create_task(client.request("GET", server.url + "/"))
            with pytest.raises(TimeoutError):
                await doomed
            assert (await first).status == 200 and (await third).status == 200
            await client.close()

    run(scenario)


def test_a_waiter_cancelled_after_its_wake_up_passes_the_connection_on() -> None:
    async def scenario() -> None:
        async with Scripted(numbered_after(0.05)) as server:
            client = HTTPClient(1)
            first = asyncio.create_task(client.request("GET", server.url + "/"))
            await asyncio.sleep(0.01)
            second = asyncio.create_task(client.request("GET", server.url + "/"))
            third = asyncio.create_task(client.request("GET", server.url + "/"))
            await asyncio.sleep(0.01)
            pool = next(iter(client.pools.values()))
            release = pool._release

            def release_then_cancel(conn: Any) -> None:  # the deadline hits right after the wake-up
                release(conn)
                second.cancel()

            pool._release = release_then_cancel  # type: ignore[method-assign]
            assert (await first).body == b"n1"
            pool._release = release  # type: ignore[method-assign]
            with pytest.raises(asyncio.CancelledError):
                await second
            assert (await asyncio.wait_for(third, 2)).body == b"n2"
            await client.close()

    run(scenario)


def test_no_connection_is_an_oserror() -> None:
    async def scenario() -> None:
        async with Scripted(echo) as server:
            url = server.url
        client = HTTPClient()
        with pytest.raises(OSError):
            await client.request("GET", url + "/")
        await client.close()

    run(scenario)


@pytest.mark.parametrize(
    ("url", "headers", "match"),
    [
        ("http://127.0.0.1:9/a b", {}, "space or control character"),
        ("http://127.0.0.1:9/a\r\nX: y", {}, "space or control character"),
        ("ftp://127.0.0.1:9/", {}, "not an absolute http"),
        ("http://127.0.0.1:9/", {"X-Request-ID": "a\r\nX-Evil: 1"}, "does not allow"),
    ],
)
def test_a_request_that_would_break_http_is_refused_before_sending(
    url: str, headers: dict[str, str], match: str
) -> None:
    async def scenario() -> None:
        client = HTTPClient()
        with pytest.raises(ValueError, match=match):
            await client.request("GET", url, headers=headers)
        await client.close()

    run(scenario)


def test_close_drops_idle_connections_and_refuses_new_requests() -> None:
    async def scenario() -> None:
        async with Scripted(echo) as server:
            client = HTTPClient()
            await client.request("GET", server.url + "/")
            await client.close()
            await asyncio.sleep(0.1)
            assert server.eofs == 1  # the server saw the idle connection go
            with pytest.raises(HTTPClientError, match="closed"):
                await client.request("GET", server.url + "/")

    run(scenario)


def test_reply_json_reads_what_tf_serving_writes_for_non_finite_outputs() -> None:
    reply = httpclient.Reply(200, b'{"outputs": {"x": [[NaN, Infinity, -Infinity, 1.5]]}}')
    row = reply.json()["outputs"]["x"][0]
    assert row[0] != row[0] and row[1:] == [float("inf"), float("-inf"), 1.5]


@pytest.mark.parametrize(
    ("url", "line"),
    [
        ("http://127.0.0.1:8501/v1/models/m:predict", b"Host: 127.0.0.1:8501\r\n"),
        ("http://torchserve:8080/ping", b"Host: torchserve:8080\r\n"),
        ("http://[::1]:8500/x", b"Host: [::1]:8500\r\n"),
        ("https://münchen.example/x", b"Host: xn--mnchen-3ya.example:443\r\n"),
    ],
)
def test_the_host_header_names_the_origin_as_http_spells_it(url: str, line: bytes) -> None:
    assert httpclient.host_header(httpclient._target(url)) == line
