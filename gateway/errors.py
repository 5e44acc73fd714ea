"""Every error the gateway can answer with, defined once; one mapping per protocol."""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import grpc


class GatewayError(Exception):
    """Base error: carries the HTTP status and gRPC code it maps to, and a client-safe message."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    reason = "internal"

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend


class InvalidArgument(GatewayError):  # noqa: N818 (named after the gRPC status)
    """The client sent something malformed or inconsistent with the model metadata."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "invalid_argument"


class Unauthenticated(GatewayError):  # noqa: N818 (named after the gRPC status)
    """No API key was presented although the gateway requires one."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    reason = "unauthenticated"


class PermissionDenied(GatewayError):  # noqa: N818 (named after the gRPC status)
    """An API key was presented but it is not one of the accepted keys."""

    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    reason = "permission_denied"


class NotFound(GatewayError):  # noqa: N818 (named after the gRPC status)
    """Unknown model, version or path."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "not_found"


class PayloadTooLarge(GatewayError):  # noqa: N818 (named after the gRPC status)
    """The request body exceeds the configured limit."""

    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "payload_too_large"


class HeadersTooLarge(GatewayError):  # noqa: N818 (named after the HTTP status)
    """The request headers together exceed the configured limit (HTTP only: gRPC's own limit answers first)."""

    http_status = 431
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "headers_too_large"


class Overloaded(GatewayError):  # noqa: N818 (named after the gRPC status)
    """The backend's in-flight limit and its short queue are full: come back after `retry_after_s`."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "overloaded"

    def __init__(self, message: str, *, backend: str | None = None, retry_after_s: float = 1.0) -> None:
        super().__init__(message, backend=backend)
        self.retry_after_s = retry_after_s


class UpstreamError(GatewayError):
    """The backend failed (connection refused, 5xx, broken answer): a candidate for failover."""

    http_status = 502
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "upstream_error"


class Unavailable(GatewayError):  # noqa: N818 (named after the gRPC status)
    """No backend can take the request now (model not ready, circuit open, draining).

    `retry_after_s`: when it may change (an open circuit knows); None: the app's default for 503s.
    """

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "unavailable"

    def __init__(self, message: str, *, backend: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message, backend=backend)
        self.retry_after_s = retry_after_s


class UpstreamTimeout(GatewayError):  # noqa: N818 (named after the gRPC status)
    """The route deadline or the backend's timeout passed before an answer arrived."""

    http_status = 504
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "timeout"


def http_status(exc: BaseException) -> int:
    """The HTTP status for any exception: GatewayErrors carry theirs, anything else is a 500."""
    return exc.http_status if isinstance(exc, GatewayError) else 500


def grpc_code(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status code for any exception: GatewayErrors carry theirs, anything else is INTERNAL."""
    return exc.grpc_code if isinstance(exc, GatewayError) else grpc.StatusCode.INTERNAL


def client_message(exc: BaseException) -> str:
    """The message safe to show a client: ours verbatim, never internals of unexpected exceptions."""
    if isinstance(exc, GatewayError):
        prefix = f"{exc.backend}: " if exc.backend and isinstance(exc, UpstreamError | UpstreamTimeout) else ""
        return prefix + exc.message
    return "internal gateway error"


class HttpError(NamedTuple):
    """An error as HTTP renders it: status, headers, `{"error": message}` body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error_body(message: str) -> bytes:
    """The JSON body of every HTTP error."""
    return json.dumps({"error": message}).encode()


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1 (0 would invite a retry storm)."""
    return str(max(1, math.ceil(seconds)))


def render_http(exc: BaseException, unavailable_retry_s: float = 1.0) -> HttpError:
    """The one HTTP rendering of every error, with its status and hints.

    Every 429 and 503 says when to come back: 429 the configured `retry_after_s`, 503 when the circuit's
    cool-down ends, else `unavailable_retry_s`. 401 and 403 name the scheme; upstream errors name the backend.
    """
    status = http_status(exc)
    headers: list[tuple[str, str]] = []
    if isinstance(exc, Overloaded):
        headers.append(("Retry-After", str(int(exc.retry_after_s))))
    elif status == 503:
        known = exc.retry_after_s if isinstance(exc, Unavailable) else None
        headers.append(("Retry-After", retry_after(unavailable_retry_s if known is None else known)))
    if isinstance(exc, Unauthenticated | PermissionDenied):
        headers.append(("WWW-Authenticate", "Bearer"))
    if isinstance(exc, GatewayError) and exc.backend:
        headers.append(("X-Backend", exc.backend))
    return HttpError(status, headers, error_body(client_message(exc)))
