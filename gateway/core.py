"""The protocol-agnostic data plane: validate, route, call backends with limits and breakers, shadow, time."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway import __version__
from gateway.backends.base import Backend
from gateway.deadline import Deadline
from gateway.errors import GatewayError, InvalidArgument, Unavailable, UpstreamError, UpstreamTimeout
from gateway.health import HealthMonitor
from gateway.metadata import MetadataRegistry, ModelMetadata, ModelState, validate_request
from gateway.routing import Plan, pin_and_sticky, pin_of, plan
from gateway.settings import Settings
from gateway.shadow import ShadowMirror
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


@dataclass(frozen=True)
class RawBody:
    """The request's own bytes in a backend wire format (backends/base.py, e.g. TF_REST_PREDICT).

    Offered by an adapter whose body a backend might take unchanged; the core forwards it only when the plan has
    one backend (no mirror needs the tensors, no fallback may speak another protocol) and that backend `forwards`
    the format. The decoded `inputs` are validated either way."""

    body: bytes
    wire: str


@dataclass
class InferRequest:
    """One inference as the core sees it, whatever protocol it came in on.

    `headers`: the HTTP headers or gRPC metadata as they came (lowercase keys); routing picks out the pin and the
    sticky key. `deadline_s`: the client's own deadline (gRPC), when it has one.
    """

    model: str
    version: str | None
    inputs: list[InferTensor]
    outputs: list[str] | None = None
    request_id: str = "-"
    headers: Mapping[str, str] = field(default_factory=dict)
    protocol: str = "rest"
    deadline_s: float | None = None
    raw: RawBody | None = None


@dataclass
class InferResult:
    """Outputs and who produced them, with the time spent upstream."""

    model: str
    version: str
    outputs: list[InferTensor]
    backend: str
    upstream_s: float = 0.0
    raw: bytes | None = None
    """The upstream's answer as it came, when the request was forwarded (`outputs` is then empty)."""


class DataPlane:
    """Everything between a decoded request and its decoded answer; both adapters delegate here."""

    def __init__(self, settings: Settings, backends: dict[str, Backend], metrics: Metrics) -> None:
        self.settings = settings
        self.routes = settings.routes.models
        self.backends = backends
        self.metrics = metrics
        self.draining = False
        self._route_deadline = {m: f"route deadline of {r.timeout_s:.3g}s" for m, r in self.routes.items()}
        self.registry = MetadataRegistry({m: tuple(r.versions) for m, r in self.routes.items()})
        self.upstreams = Upstreams(backends, settings.breaker, settings.limits.retry_after_s, metrics)
        shadow = settings.shadow
        self.shadow = ShadowMirror(
            self.upstreams.shadow_call, metrics, shadow.queue_size, shadow.workers, shadow.tolerance
        )
        health = settings.health
        self.health = HealthMonitor(
            backends, self.upstreams.breakers, self.registry, self.routes, health.interval_s, health.failures
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

    def model_ready(self, model: str, version: str | None, headers: Mapping[str, str], protocol: str) -> bool:
        """Whether a model (404 if unknown) can be served by its policy now, or by the stack the headers pin."""
        state = self.registry.get(model, version)
        pin = pin_of(headers, protocol)
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
        pin, sticky = pin_and_sticky(route, req.headers, req.protocol)
        serving = [b for b in self.backends if b in state.backends]
        breakers = self.upstreams.breakers
        usable = [b for b in serving if breakers[b].available()]
        chosen = plan(req.model, route, pin=pin, sticky=sticky, serving=serving, usable=usable, u=random.random())
        if req.deadline_s and req.deadline_s < route.timeout_s:
            deadline = Deadline.after(req.deadline_s, f"client deadline of {req.deadline_s:.3g}s")
        else:
            deadline = Deadline.after(route.timeout_s, self._route_deadline[req.model])
        forward = (
            req.raw is not None
            and chosen.fallback is None
            and chosen.shadow is None
            and self.backends[chosen.primary].forwards(req.model, req.raw.wire)
        )
        result = await self._run(req, chosen, deadline, forward)
        if req.outputs and not forward:
            result.outputs = [t for t in result.outputs if t.name in req.outputs]
        if chosen.shadow:
            self.shadow.submit(req.model, req.version, chosen.shadow, req.inputs, result.outputs, req.request_id)
        return result

    async def _run(self, req: InferRequest, chosen: Plan, deadline: Deadline, forward: bool = False) -> InferResult:
        """The primary, then (failover) the fallback, all within the one `deadline`. With a fallback, the primary
        gets at most its share (`failover_after_s`, default half the deadline): an upstream that stopped answering
        (a stopped container's address drops packets; nothing refuses the connection) must leave the fallback time
        to answer, not take the whole deadline with it."""
        route = self.routes[req.model]
        tried: str | None = None
        upstream = 0.0
        for backend in (chosen.primary, chosen.fallback):
            if backend is None:
                break
            if tried is not None:
                if deadline.remaining() <= 0:
                    break
                self.metrics.failovers.labels(req.model, tried).inc()  # counted only when the fallback is tried
            tried = backend
            t0 = time.perf_counter()
            attempt = deadline
            if chosen.fallback is not None and backend == chosen.primary:
                share = route.failover_after_s or deadline.remaining() / 2
                attempt = deadline.cut(share, f"failover_after_s of {share:.3g}s")
            raw: bytes | None = None
            outputs: list[InferTensor] = []
            try:
                if forward and req.raw is not None:  # the plan has this one backend, which takes the body as it is
                    raw = await self.upstreams.forward(
                        req.model, backend, req.version, req.raw.body, req.request_id, attempt
                    )
                else:
                    outputs = await self.upstreams.call(
                        req.model, backend, req.version, req.inputs, req.request_id, attempt
                    )
            except (UpstreamError, UpstreamTimeout, Unavailable) as exc:
                upstream += time.perf_counter() - t0
                if chosen.fallback is None or backend == chosen.fallback:
                    raise
                log.warning("failover", extra={"fields": {"model": req.model, "from": backend, "error": exc.message}})
                continue
            upstream += time.perf_counter() - t0
            version = req.version or self.registry.models[req.model].versions[-1]
            return InferResult(req.model, version, outputs, backend, upstream, raw)
        raise UpstreamTimeout(f"{deadline.what} passed before the failover attempt", backend=tried)
