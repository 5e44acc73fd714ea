"""The gateway's pure ASGI middlewares (no BaseHTTPMiddleware on the hot path): request id, API keys, size limits.

Outermost first at request time: RequestContext, ApiKeyMiddleware, BodySizeLimit, then routing (gateway/app.py).
"""

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


class RequestContext:
    """Take or make `X-Request-ID`, expose it to logs and backends, echo it back."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = rid[:128] if rid.isprintable() and rid else new_request_id()
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class ApiKeyMiddleware:
    """ApiKeys on every HTTP path except `open_paths`: 401 without a key, 403 with a wrong one."""

    def __init__(self, app: Any, keys: ApiKeys, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.keys.enabled or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            self.keys.check(header)
        except GatewayError as exc:
            await send_error(send, exc)
            return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """431 for oversized headers; 413 from Content-Length at once, or as soon as a streamed body passes the limit."""

    def __init__(self, app: Any, max_body_bytes: int, max_header_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # httptools has no header limit of its own: refuse here, before any routing or parsing work.
        if self.max_header_bytes and sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > self.max_header_bytes:
            await send_error(send, HeadersTooLarge(f"request headers exceed {self.max_header_bytes} bytes"), close=True)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await send_error(send, PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes"), close=True)
                return
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # the app's exception handler turns this into the same 413
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
