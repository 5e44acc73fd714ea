"""Traffic limits: bounded in-flight calls per backend with a short queue, and the body size limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.errors import Overloaded, PayloadTooLarge

Scope = dict[str, Any]
Message = dict[str, Any]


class InFlightLimiter:
    """At most `max_in_flight` concurrent calls; `max_queue` may wait up to `queue_timeout_s`; others 429."""

    def __init__(
        self, backend: str, max_in_flight: int, max_queue: int, queue_timeout_s: float, retry_after_s: float
    ) -> None:
        self.backend = backend
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.waiting = 0
        self._sem = asyncio.Semaphore(max_in_flight)

    def _reject(self, why: str) -> Overloaded:
        return Overloaded(f"{self.backend} {why}", backend=self.backend, retry_after_s=self.retry_after_s)

    def slot(self) -> InFlightLimiter:
        """`async with limiter.slot():` holds one in-flight slot for its body, or raises Overloaded.

        The limiter is its own context manager: a generator-based one would cost a generator and a wrapper per call.
        """
        return self

    async def __aenter__(self) -> None:
        if self._sem.locked():
            if self.waiting >= self.max_queue:
                raise self._reject(f"is at its in-flight limit ({self.max_in_flight}) and queue is full")
            self.waiting += 1
            try:
                await asyncio.wait_for(self._sem.acquire(), self.queue_timeout_s)
            except TimeoutError:
                raise self._reject(f"in-flight slot not free within {self.queue_timeout_s}s") from None
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()
        self.in_flight += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
        self._sem.release()


class BodySizeLimit:
    """Pure ASGI middleware: 431 for oversized headers; 413 from Content-Length at once, or as soon as a
    streamed body passes the limit."""

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
            await _send_error(send, 431, f"request headers exceed {self.max_header_bytes} bytes")
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await _send_error(send, 413, f"request body exceeds {self.max_body_bytes} bytes")
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


async def _send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
