"""The gateway's pure ASGI edge (no BaseHTTPMiddleware on the hot path): request id, API keys, size limits, in one
layer in front of the inference fast path and FastAPI's routing (gateway/app.py)."""

from __future__ import annotations

from typing import Any, NamedTuple

from gateway.auth import OPEN_PATHS, ApiKeys
from gateway.errors import GatewayError, HeadersTooLarge, PayloadTooLarge, render_http
from gateway.telemetry import new_request_id, request_id

Scope = dict[str, Any]
Message = dict[str, Any]


async def send_error(send: Any, exc: GatewayError, *, close: bool = False) -> None:
    """Answer with the one HTTP rendering of `exc` (errors.render_http) before the app saw the request."""
    error = render_http(exc)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(error.body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers]
    if close:  # the rest of an oversized request is never read: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body})


class Admission(NamedTuple):
    """What the edge decided about a request from its head alone."""

    request_id: str
    refusal: GatewayError | None
    """The error it is refused with (key, headers, body size, in that order), or None."""
    framed: bool
    """Its body's length is given by one Content-Length and no Transfer-Encoding: the parser delivers exactly that
    many bytes, so the size limit was already checked in full."""


class EdgeRules:
    """What every HTTP request meets before routing:

    1. the request id: `X-Request-ID` taken (printable, at most 128 characters) or made, set for logs and
       backends, echoed on the response;
    2. API keys (ApiKeys) on every path except `open_paths`: 401 without a key, 403 with a wrong one;
    3. size limits: 431 for oversized headers; 413 from Content-Length at once, or as soon as a streamed body
       passes the limit.

    Applied by RequestEdge to every ASGI request and by the inference lane (gateway/lane.py) to the requests it
    takes, so both apply the same rules.
    """

    def __init__(
        self,
        keys: ApiKeys,
        max_body_bytes: int,
        max_header_bytes: int | None = None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.keys = keys
        self.open_paths = open_paths
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    def admit(self, path: str, headers: list[tuple[bytes, bytes]]) -> Admission:
        """The request id and any refusal, from one pass over the (lowercase-named) headers."""
        given: str | None = None
        authorization: str | None = None
        length, lengths, header_bytes, chunked = 0, 0, 0, False
        for key, value in headers:
            header_bytes += len(key) + len(value) + 4
            if key == b"x-request-id" and given is None:
                given = value.decode("latin-1")
            elif key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif key == b"content-length":
                lengths += 1
                if value.isdigit():
                    length = max(length, int(value))
            elif key == b"transfer-encoding":
                chunked = True
        rid = given[:128] if given and given.isprintable() else new_request_id()
        refusal = self._refusal(path, authorization, length, header_bytes)
        return Admission(rid, refusal, lengths == 1 and not chunked)

    def _refusal(self, path: str, authorization: str | None, length: int, header_bytes: int) -> GatewayError | None:
        """The error a request is refused with before the app sees it, if any (in this order: key, headers, body)."""
        if self.keys.enabled and path not in self.open_paths:
            try:
                self.keys.check(authorization)
            except GatewayError as exc:
                return exc
        if self.max_header_bytes and header_bytes > self.max_header_bytes:
            return HeadersTooLarge(f"request headers exceed {self.max_header_bytes} bytes")
        if length > self.max_body_bytes:
            return PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
        return None


class RequestEdge:
    """EdgeRules as the ASGI layer in front of routing (one frame and one send wrapper per request, where three
    nested layers cost a third of the gateway's Python before the fast path, timed cold); it also enforces the
    body limit on bodies that arrive without a Content-Length."""

    def __init__(self, app: Any, rules: EdgeRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, error, _ = self.rules.admit(scope["path"], scope["headers"])
        token = request_id.set(rid)
        echo = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        try:
            if error is not None:
                # httptools has no header limit of its own, and an oversized body is never read: either way the
                # connection cannot be reused
                await send_error(send_with_id, error, close=isinstance(error, HeadersTooLarge | PayloadTooLarge))
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            request_id.reset(token)

    def _limited(self, receive: Any) -> Any:
        """`receive` that raises PayloadTooLarge (the app's handlers render the same 413) once the body passes
        the limit."""
        received = 0
        limit = self.rules.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        return limited_receive
