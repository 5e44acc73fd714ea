"""The protocol-agnostic data plane: validate, route, call backends with limits and breakers, shadow, time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from gateway import __version__
from gateway.backends.base import Backend
from gateway.errors import GatewayError, InvalidArgument, Unavailable, UpstreamError, UpstreamTimeout
from gateway.health import HealthMonitor
from gateway.metadata import MetadataRegistry, ModelMetadata, ModelState, validate_request
from gateway.policies import ShadowMirror
from gateway.routing import Plan, plan
from gateway.settings import Settings
from gateway.telemetry import Metrics, status_class
from gateway.tensors import InferTensor
from gateway.upstream import Upstreams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerMetadata:
    """What the v2 server metadata endpoints report."""

    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass
class InferRequest:
    """One inference as the core sees it, whatever protocol it came in on."""

    model: str
    version: str | None
    inputs: list[InferTensor]
    outputs: list[str] | None = None
    request_id: str = "-"
    pin: str | None = None
    sticky: str | None = None
    protocol: str = "rest"
    deadline_s: float | None = None


@dataclass
class InferResult:
    """Outputs and who produced them, with the time spent upstream."""

    model: str
    version: str
    outputs: list[InferTensor]
    backend: str
    upstream_s: float = 0.0
    gateway_s: float = 0.0
    attempts: list[str] = field(default_factory=list)


class DataPlane:
    """Everything between a decoded request and its decoded answer; both adapters delegate here."""

    def __init__(self, settings: Settings, backends: dict[str, Backend], metrics: Metrics) -> None:
        self.settings = settings
        self.routes = settings.routes.models
        self.backends = backends
        self.metrics = metrics
        self.draining = False
        self.registry = MetadataRegistry({m: tuple(r.versions) for m, r in self.routes.items()})
        self.upstreams = Upstreams(backends, settings.breaker, settings.limits.retry_after_s, metrics)
        self.breakers = self.upstreams.breakers
        self.call = self.upstreams.call
        shadow = settings.shadow
        self.shadow = ShadowMirror(
            self.upstreams.shadow_call, metrics, shadow.queue_size, shadow.workers, shadow.tolerance
        )
        health = settings.health
        self.health = HealthMonitor(
            backends, self.breakers, self.registry, self.routes, health.interval_s, health.failures
        )

    async def start(self) -> None:
        """Open backend connections, fetch metadata, start health checks and shadow workers."""
        for backend in self.backends.values():
            await backend.start()
        await self.health.refresh_metadata()
        self.shadow.start()
        self.health.start()

    async def close(self) -> None:
        """Stop background work and close connections."""
        self.draining = True
        await self.health.close()
        await self.shadow.close()
        for backend in self.backends.values():
            await backend.close()

    # ---- health and metadata -------------------------------------------------------------------
    def live(self) -> bool:
        """The process is up and answering."""
        return True

    def ready(self) -> bool:
        """Ready when not draining and every routed model can be served by its policy now."""
        return not self.draining and all(self._routable(m) for m in self.routes)

    def model_ready(self, model: str, version: str | None, pin: str | None = None) -> bool:
        """Whether a model (404 if unknown) can be served by its policy now, or by the `pin`ned stack."""
        state = self.registry.get(model, version)
        if pin:
            return not self.draining and state.ready and pin in state.backends
        return not self.draining and self._routable(model)

    def _routable(self, model: str) -> bool:
        # a pinned route needs its own backend; the other policies can answer from either stack
        state = self.registry.models[model]
        route = self.routes[model]
        return state.ready and (route.policy != "pin" or route.backend in state.backends)

    def server_metadata(self) -> ServerMetadata:
        """Name, version and v2 extensions of the gateway."""
        return ServerMetadata("twinserve-gateway", __version__, ("binary_tensor_data",))

    def model_metadata(self, model: str, version: str | None) -> ModelMetadata:
        """The agreed metadata of a ready model (404 unknown, 503 not ready)."""
        state = self.registry.require_ready(model, version)
        assert state.meta is not None
        meta = state.meta
        return ModelMetadata(model, state.versions, meta.platform, meta.inputs, meta.outputs)

    # ---- inference ---------------------------------------------------------------------------------
    async def infer(self, req: InferRequest) -> InferResult:
        """Validate, route and run one inference; record metrics whatever happens."""
        start = time.perf_counter()
        backend, status = "none", 500
        try:
            result = await self._infer(req)
            backend, status = result.backend, 200
            result.gateway_s = time.perf_counter() - start
            return result
        except GatewayError as exc:
            status = exc.http_status
            backend = exc.backend or "none"
            if exc.reason in ("overloaded", "payload_too_large", "unavailable"):
                self.metrics.rejections.labels(exc.reason).inc()
            raise
        finally:
            model = req.model if req.model in self.routes else "unknown"
            self.metrics.observe_request(
                model, backend, req.protocol, status_class(status), time.perf_counter() - start
            )

    async def _infer(self, req: InferRequest) -> InferResult:
        if not req.inputs:
            raise InvalidArgument("request has no inputs")
        state: ModelState = self.registry.require_ready(req.model, req.version)
        assert state.meta is not None
        validate_request(state.meta, req.inputs, req.outputs)
        route = self.routes[req.model]
        timeout = min(route.timeout_s, req.deadline_s) if req.deadline_s else route.timeout_s
        deadline = time.monotonic() + timeout
        serving = [b for b in self.backends if b in state.backends]
        usable = [b for b in serving if self.breakers[b].available()]
        chosen = plan(
            req.model,
            route,
            pin=req.pin,
            sticky=req.sticky,
            serving=serving,
            usable=usable,
            u=random.random(),
        )
        try:
            async with asyncio.timeout(timeout):
                result = await self._run(req, chosen, deadline, route.failover_after_s or timeout / 2)
        except TimeoutError:
            raise UpstreamTimeout(f"route deadline of {timeout:.3g}s passed", backend=chosen.primary) from None
        if req.outputs:
            result.outputs = [t for t in result.outputs if t.name in req.outputs]
        if chosen.shadow:
            self.shadow.submit(req.model, req.version, chosen.shadow, req.inputs, result.outputs, req.request_id)
        return result

    async def _run(self, req: InferRequest, chosen: Plan, deadline: float, primary_s: float) -> InferResult:
        """The primary, then (failover) the fallback. With a fallback, the primary gets at most `primary_s` of the
        deadline: an upstream that stopped answering (a stopped container's address drops packets; nothing refuses
        the connection) must leave the fallback time to answer, not take the whole deadline with it."""
        attempts: list[str] = []
        upstream = 0.0
        for backend in (chosen.primary, chosen.fallback):
            if backend is None:
                break
            if attempts and time.monotonic() >= deadline:
                break
            attempts.append(backend)
            t0 = time.perf_counter()
            cut = deadline
            if chosen.fallback is not None and backend == chosen.primary:
                cut = min(deadline, time.monotonic() + primary_s)
            try:
                outputs = await self.call(req.model, backend, req.version, req.inputs, req.request_id, cut)
            except (UpstreamError, UpstreamTimeout, Unavailable) as exc:
                upstream += time.perf_counter() - t0
                if chosen.fallback is None or backend == chosen.fallback:
                    raise
                self.metrics.failovers.labels(req.model, backend).inc()
                log.warning("failover", extra={"fields": {"model": req.model, "from": backend, "error": exc.message}})
                continue
            upstream += time.perf_counter() - t0
            version = req.version or self.registry.models[req.model].versions[-1]
            return InferResult(req.model, version, outputs, backend, upstream, attempts=attempts)
        raise UpstreamTimeout("route deadline passed before the failover attempt", backend=attempts[-1])
