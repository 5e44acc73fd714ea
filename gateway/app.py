"""App factory: `create_app(settings)` builds the app; its lifespan owns backends and the gRPC server."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException

from gateway import openapi, rest
from gateway.auth import OPEN_PATHS, ApiKeyMiddleware, ApiKeys
from gateway.backends import Backend, build_backends
from gateway.core import DataPlane
from gateway.errors import GatewayError, Overloaded, Unavailable, client_message, http_status
from gateway.exposure import metrics_public
from gateway.limits import BodySizeLimit
from gateway.settings import Settings
from gateway.telemetry import Metrics, configure_logging, new_request_id, request_id

log = logging.getLogger(__name__)


class RequestContext:
    """Pure ASGI middleware: take or make `X-Request-ID`, expose it to logs and backends, echo it back."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = rid[:128] if rid.isprintable() and rid else new_request_id()
        token = request_id.set(rid)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1 (0 would invite a retry storm)."""
    return str(max(1, math.ceil(seconds)))


def unavailable_retry_s(settings: Settings) -> float:
    """Retry-After of a 503 that knows no better: the next health check is the earliest it can change."""
    return settings.health.interval_s


def error_response(exc: BaseException, unavailable_retry: float = 1.0) -> Response:
    """The one HTTP rendering of every error: `{"error": message}` with its status and hints.

    Every 429 and 503 says when to come back: 429 the configured `retry_after_s`, 503 when the circuit's
    cool-down ends, else `unavailable_retry`.
    """
    status = http_status(exc)
    response = Response(
        json.dumps({"error": client_message(exc)}).encode(), status_code=status, media_type="application/json"
    )
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(int(exc.retry_after_s))
    elif status == 503:
        known = exc.retry_after_s if isinstance(exc, Unavailable) else None
        response.headers["Retry-After"] = retry_after(unavailable_retry if known is None else known)
    if isinstance(exc, GatewayError) and exc.backend:
        response.headers["X-Backend"] = exc.backend
    return response


def create_app(settings: Settings | None = None, *, backends: dict[str, Backend] | None = None) -> FastAPI:
    """Build the gateway app; `backends` replaces the clients built from settings (tests inject faults)."""
    settings = settings or Settings()
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_json)
    metrics = Metrics(settings.telemetry.metrics_multiproc_dir)
    keys = ApiKeys(settings.api_keys())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from gateway.grpc_server import start_grpc_server  # grpc server module only when serving

        plane = DataPlane(settings, backends if backends is not None else build_backends(settings), metrics)
        await plane.start()
        app.state.plane = plane
        server = None
        if settings.server.grpc_port is not None:
            server, app.state.grpc_port = await start_grpc_server(plane, keys, settings)
        log.info(
            "gateway started",
            extra={"fields": {"models": sorted(plane.routes), "backends": sorted(plane.backends)}},
        )
        try:
            yield
        finally:
            plane.draining = True  # readiness goes false first, so balancers stop sending
            if server is not None:
                await server.stop(settings.server.graceful_timeout_s)
            await plane.close()

    # Telemetry is our own (Prometheus, JSON logs); FastAPI's OpenTelemetry hook would look up three global
    # providers on every request to find them unconfigured.
    no_otel: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None, telemetry=no_otel)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.retry_after_503 = retry_after(unavailable_retry_s(settings))
    rest.mount(app)
    # After the API routes, so matching an inference request never tries this path first.
    models = {name: route.versions for name, route in settings.routes.models.items()}
    openapi.install(app, [path for path, _ in rest.INFERENCE_ROUTES], models)

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc, unavailable_retry_s(settings))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        body = json.dumps({"error": str(exc.detail)}).encode()
        return Response(body, status_code=exc.status_code, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return Response(
            json.dumps({"error": str(exc.errors())}).encode(), status_code=400, media_type="application/json"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(exc, unavailable_retry_s(settings))

    # Outermost first at request time: request id, then auth, then the body limit, then routing.
    lim = settings.limits
    app.add_middleware(BodySizeLimit, max_body_bytes=lim.max_body_bytes, max_header_bytes=lim.max_header_bytes)
    open_paths = OPEN_PATHS if metrics_public(settings) else OPEN_PATHS - {"/metrics"}
    app.add_middleware(ApiKeyMiddleware, keys=keys, open_paths=open_paths)
    app.add_middleware(RequestContext)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment."""
    return create_app(Settings())
