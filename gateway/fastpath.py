"""The inference endpoints as one pure ASGI layer in front of FastAPI's own stack.

Every POST to an inference path (rest.INFERENCE_HANDLERS) that reaches ASGI is answered here: the body read from
`receive`, the handler called with the path's two parameters (`respond`, which the inference lane in gateway/lane.py
calls too, for the plain requests it takes before ASGI), the answer sent as two ASGI messages. Everything else (health,
metadata, /metrics, OpenAPI, 404s and 405s) goes on to FastAPI, where the same paths are also registered as the
fallback. It sits inside the request edge (request id, API keys, size limits: gateway/middleware.py), so those
apply as they do to every route; errors are rendered by errors.render_http as FastAPI's handlers render them.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.routing import compile_path

from gateway.errors import GatewayError, render_http
from gateway.rest import INFERENCE_HANDLERS, Answer, Handler

log = logging.getLogger(__name__)

Scope = dict[str, Any]

ROUTES: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (compile_path(path)[0], handler) for path, handler in INFERENCE_HANDLERS
)
"""Starlette's own regexes for the paths, so a path matches here exactly when it would match there."""


def match(path: str) -> tuple[Handler, dict[str, str]] | None:
    """The handler of an inference path and the path's parameters, or None."""
    for regex, handler in ROUTES:
        found = regex.match(path)
        if found is not None:
            return handler, found.groupdict()
    return None


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lowercase names (as ASGI servers give them) to values; the first of repeated names wins, as in Starlette."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(raw)}


async def _body(receive: Any) -> bytes | None:
    """The whole request body, or None when the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    state: Any,
    handler: Handler,
    params: dict[str, str],
    raw: list[tuple[bytes, bytes]],
    body: bytes,
    start: float,
    unavailable_retry_s: float,
) -> tuple[int, Answer]:
    """The status and answer of an inference request (every error rendered by errors.render_http)."""
    try:
        answer = await handler(state.plane, params["model"], params.get("version"), _headers(raw), body, start)
    except Exception as exc:
        return _rendered(exc, unavailable_retry_s)
    return 200, answer


def _rendered(exc: Exception, unavailable_retry_s: float) -> tuple[int, Answer]:
    """`exc` as a status and an answer (errors.render_http); anything not a GatewayError is logged first."""
    if not isinstance(exc, GatewayError):
        log.exception("unhandled error")
    error = render_http(exc, unavailable_retry_s)
    return error.status, Answer(error.body, "application/json", dict(error.headers))


def head_fields(answer: Answer) -> list[tuple[bytes, bytes]]:
    """The response header fields of `answer` (its length, media type and own headers), lowercase names."""
    raw = [(b"content-length", str(len(answer.body)).encode()), (b"content-type", answer.media_type.encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
    return raw


class InferenceFastPath:
    """Serve the inference POSTs; pass everything else to `app`. `state`: the app's state (its `plane` is set
    by the lifespan); `unavailable_retry_s`: the Retry-After of a 503 that knows no better."""

    def __init__(self, app: Any, state: Any, unavailable_retry_s: float) -> None:
        self.app = app
        self.state = state
        self.unavailable_retry_s = unavailable_retry_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        found = match(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            body = await _body(receive)
        except Exception as exc:  # a streamed body past the size limit (gateway/middleware.py)
            status, answer = _rendered(exc, self.unavailable_retry_s)
        else:
            if body is None:
                return
            status, answer = await respond(self.state, *found, scope["headers"], body, start, self.unavailable_retry_s)
        await send({"type": "http.response.start", "status": status, "headers": head_fields(answer)})
        await send({"type": "http.response.body", "body": answer.body})
