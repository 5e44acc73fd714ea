"""A lean HTTP/1.1 keep-alive client for the REST user's hot path: prebuilt request bytes over gevent sockets.

Locust's FastHttpSession (geventhttpclient's UserAgent, catch_response, a Locust event per request) cost
0.27 ms of generator CPU per request against TorchServe on the reference VM, a raw keep-alive exchange 0.12 ms
(closed loop, 4 in flight): on 2 shared cores that difference is the server capacity the bench could show.
This client does only what a benchmark POST needs: a pool of persistent connections, the whole request written
with one `sendall`, the status line, `Content-Length` or chunked bodies, and a per-request deadline.
"""

from __future__ import annotations

import socket as _stdsocket
from dataclasses import dataclass

import gevent
from gevent import socket
from gevent.queue import LifoQueue

from loadtest.spec import DEFAULT_TIMEOUT_S


class HTTPError(Exception):
    """The exchange failed below HTTP (connection refused or closed, malformed answer, deadline)."""


@dataclass(frozen=True)
class Response:
    """Status code, the raw header block (without the status line) and the body."""

    status: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        key = b"\r\n" + name.lower().encode("ascii") + b":"
        low = self.head.lower()
        i = low.find(key)
        if i < 0:
            return None
        j = self.head.find(b"\r\n", i + len(key))
        return self.head[i + len(key) : j if j >= 0 else None].strip().decode("latin-1")


def request_bytes(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A complete POST with `Content-Length`, keep-alive, ready for one `sendall`."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class KeepAliveClient:
    """Persistent connections to one host:port, reused last-in-first-out; at most `max_connections` open.

    A send that finds every connection busy and the cap reached waits for the next free one (as Locust's
    FastHttpUser did); its latency still counts from the scheduled time.
    """

    def __init__(self, host: str, port: int, timeout_s: float = DEFAULT_TIMEOUT_S, max_connections: int = 512) -> None:
        self.address = (host, port)
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.open = 0
        self._idle: LifoQueue[socket.socket] = LifoQueue()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout_s)
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        return sock

    def _acquire(self) -> socket.socket:
        if not self._idle.empty() or self.open >= self.max_connections:
            return self._idle.get()
        self.open += 1
        try:
            return self._connect()
        except OSError:
            self.open -= 1
            raise

    def post(self, request: bytes) -> Response:
        """Send one prebuilt request (`request_bytes`) and read its whole answer; raises HTTPError."""
        try:
            sock = self._acquire()
        except OSError as err:
            raise HTTPError(f"cannot connect to {self.address[0]}:{self.address[1]}: {err}") from err
        reuse = False
        try:
            with gevent.Timeout(self.timeout_s, HTTPError(f"no answer within {self.timeout_s:g} s")):
                sock.sendall(request)
                resp, reuse = _read_response(sock)
            return resp
        except OSError as err:
            raise HTTPError(str(err)) from err
        finally:
            if reuse:
                self._idle.put(sock)
            else:
                self.open -= 1
                sock.close()

    def close(self) -> None:
        """Close the idle connections."""
        while not self._idle.empty():
            self._idle.get().close()
            self.open -= 1


def _read_response(sock: socket.socket) -> tuple[Response, bool]:
    """(the response, whether the connection may be reused)."""
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        buf += _recv(sock)
    first, _, head = buf[:end].partition(b"\r\n")
    rest = buf[end + 4 :]
    try:
        status = int(first.split(b" ", 2)[1])
    except (IndexError, ValueError) as err:
        raise HTTPError(f"malformed status line {first[:80]!r}") from err
    head = b"\r\n" + head
    low = head.lower()
    if b"\r\ntransfer-encoding: chunked" in low:
        body, rest = _read_chunked(sock, rest)
    else:
        i = low.find(b"\r\ncontent-length:")
        if i < 0:
            raise HTTPError("answer without Content-Length or chunked encoding")
        j = low.find(b"\r\n", i + 17)
        n = int(low[i + 17 : j if j >= 0 else None])
        while len(rest) < n:
            rest += _recv(sock)
        body, rest = rest[:n], rest[n:]
    reuse = not rest and b"\r\nconnection: close" not in low
    return Response(status, head, body), reuse


def _read_chunked(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    parts: list[bytes] = []
    while True:
        while (i := buf.find(b"\r\n")) < 0:
            buf += _recv(sock)
        size = int(buf[:i].split(b";", 1)[0], 16)
        buf = buf[i + 2 :]
        while len(buf) < size + 2:
            buf += _recv(sock)
        if size == 0:  # no trailers expected; the final CRLF ends the message
            return b"".join(parts), buf[2:]
        parts.append(buf[:size])
        buf = buf[size + 2 :]


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise HTTPError("connection closed by the server mid-answer")
    return data
