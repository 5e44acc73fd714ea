"""The gateway's pure ASGI edge (no BaseHTTPMiddleware on the hot path): request id, API keys, size limits, in one
layer in front of the inference fast path and FastAPI's routing (gateway/app.py)."""

from __future__ import annotations

from typing import Any

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


class RequestEdge:
    """What every HTTP request meets before routing, in one layer (one frame and one send wrapper per request,
    where three nested layers cost a third of the gateway's Python before the fast path, timed cold):

    1. the request id: `X-Request-ID` taken (printable, at most 128 characters) or made, set for logs and
       backends, echoed on the response;
    2. API keys (ApiKeys) on every path except `open_paths`: 401 without a key, 403 with a wrong one;
    3. size limits: 431 for oversized headers; 413 from Content-Length at once, or as soon as a streamed body
       passes the limit.
    """

    def __init__(
        self,
        app: Any,
        keys: ApiKeys,
        max_body_bytes: int,
        max_header_bytes: int | None = None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given: str | None = None
        authorization: str | None = None
        length, header_bytes = 0, 0
        for key, value in scope["headers"]:  # one pass over the headers for all three
            header_bytes += len(key) + len(value) + 4
            if key == b"x-request-id" and given is None:
                given = value.decode("latin-1")
            elif key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif key == b"content-length" and value.isdigit():
                length = max(length, int(value))
        rid = given[:128] if given and given.isprintable() else new_request_id()
        token = request_id.set(rid)
        echo = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        try:
            error = self._refusal(scope, authorization, length, header_bytes)
            if error is not None:
                # httptools has no header limit of its own, and an oversized body is never read: either way the
                # connection cannot be reused
                await send_error(send_with_id, error, close=isinstance(error, HeadersTooLarge | PayloadTooLarge))
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            request_id.reset(token)

    def _refusal(self, scope: Scope, authorization: str | None, length: int, header_bytes: int) -> GatewayError | None:
        """The error a request is refused with before the app sees it, if any (in this order: key, headers, body)."""
        if self.keys.enabled and scope["path"] not in self.open_paths:
            try:
                self.keys.check(authorization)
            except GatewayError as exc:
                return exc
        if self.max_header_bytes and header_bytes > self.max_header_bytes:
            return HeadersTooLarge(f"request headers exceed {self.max_header_bytes} bytes")
        if length > self.max_body_bytes:
            return PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
        return None

    def _limited(self, receive: Any) -> Any:
        """`receive` that raises PayloadTooLarge (the app's handlers render the same 413) once the body passes
        the limit."""
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        return limited_receive
