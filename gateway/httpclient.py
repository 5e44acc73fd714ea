"""The gateway's upstream HTTP/1.1 client: pooled keep-alive connections on asyncio protocols, httptools' parser.

Why not aiohttp, which the gateway used before: a request-and-answer through aiohttp's ClientSession costs about
90 µs of CPU against 27 µs here (`python -m loadtest.gatewaybench --groups clients`, docs/gateway-performance.md),
and on the pass-through path the client was the largest share of the gateway's own Python. The gateway needs
little of aiohttp's breadth (no cookies, redirects, compression, proxies or streaming): one request, one whole
answer, over a pool of persistent connections per origin. httptools (llhttp, which uvicorn already uses for the
server side) does the parsing; this module does the pooling and the failure handling.

Contract: `request()` returns a `Reply` for any HTTP status; it raises `HTTPClientError` when the upstream broke
HTTP (malformed answer, connection closed mid-answer, answer over `max_body`) and `OSError` when no connection
could be made. A request sent on a reused connection that the upstream had already closed (its keep-alive ran
out while ours had not) is sent once more on a new connection: nothing of it was answered, and the gateway's
upstream calls are inference, metadata and health, which change nothing upstream.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

KEEPALIVE_S = 30.0
"""An idle connection older than this is closed instead of reused (servers drop idle ones too)."""


BIG_BODY = 64 << 10
"""Bodies from this size on are written beside the head rather than copied into one buffer with it."""


class HTTPClientError(Exception):
    """The upstream broke HTTP: a malformed answer, a connection closed before the answer ended, one too large."""


class _StaleConnectionError(HTTPClientError):
    """The connection closed before any byte of the answer arrived."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream's whole answer."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON: orjson, or the stdlib for what orjson refuses (TF Serving writes NaN and Infinity
        for non-finite outputs, which are not JSON)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a URL goes: its origin (pool key) and the request-target sent on the request line."""

    scheme: str
    host: str
    port: int
    path: str


@lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    """Split an absolute http(s) URL (cached: the gateway calls a handful of URLs over and over)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c <= " " or c == "\x7f" for c in path):  # it goes on the request line as it is
        raise ValueError(f"URL path has a space or control character: {path!r}")
    return _Target(parts.scheme, parts.hostname, port, path)


def host_header(target: _Target) -> bytes:
    """The Host header line of a target: IPv6 literals in brackets, other names in their IDNA (ASCII) form."""
    host = f"[{target.host}]".encode() if ":" in target.host else target.host.encode("idna")
    return b"Host: %s:%d\r\n" % (host, target.port)


class _Connection(asyncio.Protocol):
    """One persistent connection; one exchange at a time (no pipelining)."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.got_bytes = False
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the end is in the stream, not at EOF
        self.keep = True
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for (e.g. a 408 on an idle connection): unusable
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPClientError(f"malformed HTTP answer from {self.pool.origin}: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None:
            self.pool.forget(self)
        elif self.headers_done and not self.framed:  # an answer delimited by the end of the connection
            self.keep = False
            self.on_message_complete()
        elif not self.got_bytes:
            self._fail(_StaleConnectionError(f"{self.pool.origin} closed the connection before answering"))
        else:
            self._fail(HTTPClientError(f"{self.pool.origin} closed the connection in the middle of its answer"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.pool.max_body:
            self._fail(HTTPClientError(f"answer from {self.pool.origin} is over {self.pool.max_body} bytes"))
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.keep = self.keep and not self.closed and self.parser.should_keep_alive()
        waiter.set_result(Reply(self.parser.get_status_code(), body))

    # used by the pool
    def exchange(self, head: bytes, body: bytes) -> asyncio.Future[Reply]:
        """Send one whole request; the future resolves with the whole answer."""
        assert self.transport is not None and self.waiter is None
        self.waiter = self.pool.loop.create_future()
        self.chunks, self.size, self.got_bytes, self.headers_done, self.framed = [], 0, False, False, False
        if len(body) < BIG_BODY:
            self.transport.write(head + body)  # one write, one segment for the small bodies that are most calls
        else:
            self.transport.writelines((head, body))  # no copy of a large tensor body
        return self.waiter

    def abort(self) -> None:
        """Drop the connection now (unread bytes, a cancelled exchange, a pool being closed)."""
        self.keep = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _fail(self, exc: HTTPClientError) -> None:
        waiter, self.waiter = self.waiter, None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _Pool:
    """Connections to one origin: at most `limit` open, idle ones reused newest first."""

    def __init__(self, target: _Target, limit: int, max_body: int, ssl_context: ssl.SSLContext | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.origin = target.host, target.port, f"{target.scheme}://{target.host}:{target.port}"
        self.limit, self.max_body, self.ssl = limit, max_body, ssl_context
        self.host_header = host_header(target)
        self.idle: list[_Connection] = []
        self.open = 0  # idle + busy + connecting
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closing = False

    async def send(self, head: bytes, body: bytes, connect_timeout_s: float) -> Reply:
        """One exchange; sent a second time only when a reused connection turned out closed."""
        for attempt in (0, 1):
            conn, reused = await self._acquire(connect_timeout_s)
            try:
                reply = await conn.exchange(head, body)
            except _StaleConnectionError:
                self._release(conn)
                if reused and attempt == 0:
                    continue
                raise
            except BaseException:  # cancelled (deadline) or failed: the connection's state is unknown
                conn.abort()
                self._release(conn)
                raise
            self._release(conn)
            return reply
        raise AssertionError("unreachable")

    async def _acquire(self, connect_timeout_s: float) -> tuple[_Connection, bool]:
        while True:
            if self.closing:
                raise HTTPClientError(f"client to {self.origin} is closed")
            now = time.monotonic()
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                    return conn, True
                conn.abort()
                self.open -= 1
            if self.open < self.limit:
                self.open += 1
                try:
                    conn = await self._connect(connect_timeout_s)
                except BaseException:
                    self.open -= 1
                    self._wake()
                    raise
                return conn, False
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # the wake-up meant for us goes to the next in line
                waiter.cancel()
                raise

    async def _connect(self, timeout_s: float) -> _Connection:
        async with asyncio.timeout(timeout_s):
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl else None,
            )
        return conn

    def _release(self, conn: _Connection) -> None:
        """Back to the idle list when it can carry another exchange, else closed; either way a waiter may go."""
        if conn.keep and not conn.closed and not self.closing:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.abort()
            self.open -= 1
        self._wake()

    def forget(self, conn: _Connection) -> None:
        """An idle connection the upstream closed."""
        if conn in self.idle:
            self.idle.remove(conn)
            self.open -= 1
            self._wake()

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self.closing = True
        for conn in self.idle:
            conn.abort()
        self.open -= len(self.idle)
        self.idle.clear()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(HTTPClientError(f"client to {self.origin} is closed"))
        self.waiters.clear()


class HTTPClient:
    """Pooled HTTP/1.1 keep-alive client: one pool per origin, `limit` connections each."""

    def __init__(self, limit: int = 100, *, max_body: int = 256 << 20, connect_timeout_s: float = 30.0) -> None:
        self.limit = limit
        self.max_body = max_body
        self.connect_timeout_s = connect_timeout_s
        self.pools: dict[tuple[str, str, int], _Pool] = {}
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Reply:
        """Send one request and read its whole answer (`timeout_s`: for all of it; None: the caller bounds it)."""
        if self.closed:
            raise HTTPClientError("client is closed")
        target = _target(url)
        head = [f"{method} {target.path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"]
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} has a character HTTP does not allow there")
            head.append(f"{name}: {value}\r\n")
        head.append("\r\n")
        pool = self._pool(target)
        data = head[0].encode() + pool.host_header + "".join(head[1:]).encode("latin-1")
        if timeout_s is None:
            return await pool.send(data, body, self.connect_timeout_s)
        async with asyncio.timeout(timeout_s):
            return await pool.send(data, body, self.connect_timeout_s)

    def _pool(self, target: _Target) -> _Pool:
        key = (target.scheme, target.host, target.port)
        pool = self.pools.get(key)
        if pool is None:
            if target.scheme == "https" and self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl if target.scheme == "https" else None
            pool = self.pools[key] = _Pool(target, self.limit, self.max_body, context)
        return pool

    async def close(self) -> None:
        """Close every idle connection now and each busy one when its exchange ends."""
        self.closed = True
        for pool in self.pools.values():
            pool.close()
        await asyncio.sleep(0)  # let the transports' close callbacks run
