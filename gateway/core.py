"""The protocol-agnostic data plane: validate, route, call backends with limits and breakers, shadow, time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from gateway import __version__
from gateway.backends.base import Backend
from gateway.breaker import STATE_VALUE, CircuitBreaker
from gateway.errors import GatewayError, InvalidArgument, Unavailable, UpstreamError, UpstreamTimeout
from gateway.limits import InFlightLimiter
from gateway.metadata import MetadataRegistry, ModelMetadata, ModelState, TensorMeta, validate_request
from gateway.policies import ShadowMirror
from gateway.routing import Plan, plan
from gateway.settings import Route, Settings
from gateway.telemetry import Metrics, status_class
from gateway.tensors import InferTensor

log = logging.getLogger(__name__)


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


def declared_metadata(name: str, route: Route) -> ModelMetadata | None:
    """The signature declared in the routes file, as ModelMetadata."""
    if route.signature is None:
        return None
    inputs = tuple(TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in route.signature.inputs)
    outputs = tuple(TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in route.signature.outputs)
    return ModelMetadata(name, tuple(route.versions), "declared", inputs, outputs)


class DataPlane:
    """Everything between a decoded request and its decoded answer; both adapters delegate here."""

    def __init__(self, settings: Settings, backends: dict[str, Backend], metrics: Metrics) -> None:
        self.settings = settings
        self.routes = settings.routes.models
        self.backends = backends
        self.metrics = metrics
        self.draining = False
        self.registry = MetadataRegistry({m: tuple(r.versions) for m, r in self.routes.items()})
        lim = settings.limits
        self.breakers = {
            name: CircuitBreaker(
                lim.breaker_failures,
                lim.breaker_cooldown_s,
                on_change=lambda s, n=name: metrics.circuit_state.labels(n).set(STATE_VALUE[s]),
            )
            for name in backends
        }
        self.limiters = {
            name: InFlightLimiter(
                name,
                b.settings.max_in_flight,
                b.settings.max_queue,
                b.settings.queue_timeout_s,
                lim.retry_after_s,
            )
            for name, b in backends.items()
        }
        self.shadow = ShadowMirror(
            self._shadow_call, metrics, lim.shadow_queue_size, lim.shadow_workers, lim.shadow_tolerance
        )
        self._health_task: asyncio.Task[None] | None = None
        for name in backends:
            metrics.circuit_state.labels(name).set(0)

    async def start(self) -> None:
        """Open backend connections, fetch metadata, start health checks and shadow workers."""
        for backend in self.backends.values():
            await backend.start()
        await self.refresh_metadata()
        self.shadow.start()
        self._health_task = asyncio.create_task(self._health_loop(), name="health")

    async def close(self) -> None:
        """Stop background work and close connections."""
        self.draining = True
        if self._health_task:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
        await self.shadow.close()
        for backend in self.backends.values():
            await backend.close()

    async def refresh_metadata(self) -> None:
        """Fetch every routed model's metadata from every backend (also run by the health loop)."""
        fetchers = {name: self._fetcher(b) for name, b in self.backends.items()}
        await self.registry.refresh(fetchers)
        for state in self.registry.models.values():
            if not state.ready or state.reason:
                log.warning(
                    "model metadata",
                    extra={"fields": {"model": state.name, "ready": state.ready, "reason": state.reason}},
                )

    def _fetcher(self, backend: Backend):  # type: ignore[no-untyped-def]
        async def fetch(model: str, version: str) -> ModelMetadata:
            return await backend.metadata(model, version, declared_metadata(model, self.routes[model]))

        return fetch

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.limits.health_interval_s)
            try:
                await self.check_health()
            except Exception:  # the loop must survive anything a check throws
                log.exception("health check failed")

    async def check_health(self) -> None:
        """One round of active health checks; refresh metadata while some model lacks a backend."""
        probe_model = next(iter(self.routes), "")
        for name, backend in self.backends.items():
            self.breakers[name].health_result(await backend.healthy(probe_model))
        if any(set(s.backends) != set(self.backends) for s in self.registry.models.values()):
            await self.refresh_metadata()

    # ---- health and metadata -------------------------------------------------------------------
    def live(self) -> bool:
        """The process is up and answering."""
        return True

    def ready(self) -> bool:
        """Ready when not draining and every routed model is ready."""
        return not self.draining and all(s.ready for s in self.registry.models.values())

    def model_ready(self, model: str, version: str | None) -> bool:
        """Whether a model (404 if unknown) can be served now."""
        return self.registry.get(model, version).ready and not self.draining

    def server_metadata(self) -> dict[str, object]:
        """Name, version and v2 extensions of the gateway."""
        return {"name": "twinserve-gateway", "version": __version__, "extensions": ["binary_tensor_data"]}

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
            labels = (
                req.model if req.model in self.routes else "unknown",
                backend,
                req.protocol,
                status_class(status),
            )
            self.metrics.requests.labels(*labels).inc()
            self.metrics.request_duration.labels(*labels).observe(time.perf_counter() - start)

    async def _infer(self, req: InferRequest) -> InferResult:
        if self.draining:
            raise Unavailable("gateway is draining")
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
                result = await self._run(req, chosen, deadline)
        except TimeoutError:
            raise UpstreamTimeout(
                f"route deadline of {timeout:.3g}s passed", backend=chosen.primary
            ) from None
        if req.outputs:
            result.outputs = [t for t in result.outputs if t.name in req.outputs]
        if chosen.shadow:
            self.shadow.submit(
                req.model, req.version, chosen.shadow, req.inputs, result.outputs, req.request_id
            )
        return result

    async def _run(self, req: InferRequest, chosen: Plan, deadline: float) -> InferResult:
        attempts: list[str] = []
        upstream = 0.0
        for backend in (chosen.primary, chosen.fallback):
            if backend is None:
                break
            if attempts and time.monotonic() >= deadline:
                break
            attempts.append(backend)
            t0 = time.perf_counter()
            try:
                outputs = await self.call(
                    req.model, backend, req.version, req.inputs, req.request_id, deadline
                )
            except (UpstreamError, UpstreamTimeout, Unavailable) as exc:
                upstream += time.perf_counter() - t0
                if chosen.fallback is None or backend == chosen.fallback:
                    raise
                self.metrics.failovers.labels(req.model, backend).inc()
                log.warning(
                    "failover", extra={"fields": {"model": req.model, "from": backend, "error": exc.message}}
                )
                continue
            upstream += time.perf_counter() - t0
            version = req.version or self.registry.models[req.model].versions[-1]
            return InferResult(req.model, version, outputs, backend, upstream, attempts=attempts)
        raise UpstreamTimeout("route deadline passed before the failover attempt", backend=attempts[-1])

    async def call(
        self,
        model: str,
        backend: str,
        version: str | None,
        inputs: list[InferTensor],
        request_id: str,
        deadline: float | None = None,
    ) -> list[InferTensor]:
        """One upstream call through the backend's breaker and in-flight limit."""
        breaker = self.breakers[backend]
        if not breaker.allow():
            raise Unavailable(f"circuit open for {backend}", backend=backend)
        client = self.backends[backend]
        timeout = client.settings.timeout_s
        if deadline is not None:
            timeout = min(timeout, max(deadline - time.monotonic(), 0.001))
        t0 = time.perf_counter()
        outcome = "error"
        try:
            async with self.limiters[backend].slot():
                gauge = self.metrics.in_flight.labels(backend)
                gauge.inc()
                try:
                    outputs = await client.infer(
                        model, version, inputs, timeout_s=timeout, request_id=request_id
                    )
                finally:
                    gauge.dec()
            outcome = "ok"
            breaker.record_success()
            return outputs
        except (UpstreamError, UpstreamTimeout) as exc:
            outcome = exc.reason
            breaker.record_failure()
            raise
        except InvalidArgument:
            outcome = "invalid_argument"
            breaker.record_success()  # the backend answered: it is healthy, the request was not
            raise
        except GatewayError as exc:
            outcome = exc.reason
            breaker.release_probe()  # never reached the backend (overloaded)
            raise
        finally:
            self.metrics.upstream_duration.labels(model, backend, outcome).observe(time.perf_counter() - t0)

    async def _shadow_call(
        self, model: str, backend: str, version: str | None, inputs: list[InferTensor], request_id: str
    ) -> list[InferTensor]:
        return await self.call(model, backend, version, inputs, request_id)
