"""App factory: `create_app(settings)` builds the app; its lifespan owns backends and the gRPC server."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from gateway import openapi, rest
from gateway.auth import OPEN_PATHS, ApiKeys
from gateway.backends import Backend, build_backends
from gateway.core import DataPlane
from gateway.errors import GatewayError, InvalidArgument, error_body, render_http, retry_after
from gateway.exposure import metrics_public
from gateway.fastpath import InferenceFastPath
from gateway.lane import InferenceLane
from gateway.middleware import EdgeRules, RequestEdge
from gateway.settings import Settings
from gateway.telemetry import Metrics, configure_logging

log = logging.getLogger(__name__)


def unavailable_retry_s(settings: Settings) -> float:
    """Retry-After of a 503 that knows no better: the next health check is the earliest it can change."""
    return settings.health.interval_s


def error_response(exc: BaseException, unavailable_retry: float = 1.0) -> Response:
    """`exc` as a Response, rendered by errors.render_http (the one HTTP rendering of every error)."""
    error = render_http(exc, unavailable_retry)
    return Response(error.body, status_code=error.status, headers=dict(error.headers), media_type="application/json")


class GatewayApp(FastAPI):
    """FastAPI with the gateway's own pure-ASGI layers outside its stack: request id, API keys, size limits, then
    the inference fast path (gateway/fastpath.py); only what the fast path leaves goes through FastAPI's error
    middlewares and router. `outer` wraps FastAPI's stack once, when Starlette builds it."""

    def __init__(self, outer: Callable[[ASGIApp], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._outer = outer

    def build_middleware_stack(self) -> ASGIApp:
        return self._outer(super().build_middleware_stack())  # type: ignore[no-any-return]


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
        # Start-up's objects (FastAPI, pydantic, grpc, the routes) live as long as the process: out of the
        # collector's sight, so the collections that requests' garbage sets off do not walk them each time.
        gc.collect()
        gc.freeze()
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
    lim = settings.limits
    open_paths = OPEN_PATHS if metrics_public(settings) else OPEN_PATHS - {"/metrics"}
    retry_503 = unavailable_retry_s(settings)

    rules = EdgeRules(keys, lim.max_body_bytes, lim.max_header_bytes, open_paths)

    def outer(inner: ASGIApp) -> Any:
        # Outermost first at request time: the edge (request id, auth, size limits), then the inference paths.
        return RequestEdge(InferenceFastPath(inner, app.state, retry_503), rules)

    app = GatewayApp(outer, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None, telemetry=no_otel)
    app.state.settings = settings
    app.state.lane = InferenceLane(rules, app.state, retry_503)  # what gateway.lane.LaneProtocol serves
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
        # Starlette's own 404/405 for paths and methods nobody serves: same body as ours
        return Response(error_body(str(exc.detail)), status_code=exc.status_code, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(InvalidArgument(str(exc.errors())))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(exc, unavailable_retry_s(settings))

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment."""
    return create_app(Settings())
