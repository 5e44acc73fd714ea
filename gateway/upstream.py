"""One guarded upstream call: the backend's circuit breaker, its in-flight limit, the deadline and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from gateway.backends.base import Backend
from gateway.breaker import STATE_VALUE, CircuitBreaker
from gateway.deadline import Deadline
from gateway.errors import GatewayError, InvalidArgument, Unavailable, UpstreamError, UpstreamTimeout
from gateway.limits import InFlightLimiter
from gateway.settings import BreakerSettings
from gateway.telemetry import Metrics
from gateway.tensors import InferTensor

T = TypeVar("T")


class Upstreams:
    """The backends with a breaker and an in-flight limiter each; every inference goes through `call`."""

    def __init__(
        self, backends: Mapping[str, Backend], breaker: BreakerSettings, retry_after_s: float, metrics: Metrics
    ) -> None:
        self.backends = backends
        self.metrics = metrics
        self.breakers = {name: self._breaker(name, breaker) for name in backends}
        self.limiters = {
            name: InFlightLimiter(
                name, b.settings.max_in_flight, b.settings.max_queue, b.settings.queue_timeout_s, retry_after_s
            )
            for name, b in backends.items()
        }
        self._own_timeout = {name: f"{name}'s timeout_s of {b.settings.timeout_s:.3g}s" for name, b in backends.items()}
        for name in backends:
            metrics.circuit_state.labels(name).set(0)

    def _breaker(self, name: str, settings: BreakerSettings) -> CircuitBreaker:
        gauge = self.metrics.circuit_state.labels(name)
        return CircuitBreaker(settings.failures, settings.cooldown_s, on_change=lambda s: gauge.set(STATE_VALUE[s]))

    async def call(
        self,
        model: str,
        backend: str,
        version: str | None,
        inputs: list[InferTensor],
        request_id: str,
        deadline: Deadline | None = None,
    ) -> list[InferTensor]:
        """One upstream call through the backend's breaker and in-flight limit, ending by `deadline` at the latest
        and within the backend's own `timeout_s` of getting its slot (None: that timeout alone, as for a mirror)."""

        def run(client: Backend, timeout_s: float, limit: str) -> Awaitable[list[InferTensor]]:
            return client.infer(model, version, inputs, timeout_s=timeout_s, request_id=request_id, limit=limit)

        return await self._guarded(model, backend, deadline, run)

    async def forward(
        self, model: str, backend: str, version: str | None, body: bytes, request_id: str, deadline: Deadline
    ) -> bytes:
        """A body already in the backend's wire format, sent as it is (Backend.forward), under the same guards."""

        def run(client: Backend, timeout_s: float, limit: str) -> Awaitable[bytes]:
            return client.forward(model, version, body, timeout_s=timeout_s, request_id=request_id, limit=limit)

        return await self._guarded(model, backend, deadline, run)

    async def _guarded(
        self, model: str, backend: str, deadline: Deadline | None, run: Callable[[Backend, float, str], Awaitable[T]]
    ) -> T:
        breaker = self.breakers[backend]
        if not breaker.allow():
            raise Unavailable(f"circuit open for {backend}", backend=backend, retry_after_s=breaker.retry_in_s())
        client = self.backends[backend]
        own, why = client.settings.timeout_s, self._own_timeout[backend]
        t0 = time.perf_counter()
        limiter = self.limiters[backend]
        try:
            await limiter.acquire(deadline or Deadline.after(own, why))
        except GatewayError as exc:  # queue full, or the deadline passed while queued: the backend never saw it
            breaker.release_probe()
            self.metrics.observe_upstream(model, backend, exc.reason, time.perf_counter() - t0)
            raise
        outcome = "error"
        try:
            attempt = deadline.cut(own, why) if deadline else Deadline.after(own, why)
            gauge = self.metrics.in_flight_of(backend)
            gauge.inc()
            try:
                answer = await run(client, max(attempt.remaining(), 0.001), attempt.what)
            finally:
                gauge.dec()
            outcome = "ok"
            breaker.record_success()
            return answer
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
            breaker.release_probe()
            raise
        finally:
            limiter.release()
            self.metrics.observe_upstream(model, backend, outcome, time.perf_counter() - t0)

    async def shadow_call(
        self, model: str, backend: str, version: str | None, inputs: list[InferTensor], request_id: str
    ) -> list[InferTensor]:
        """A mirrored call: same guards, the backend's own timeout, never the primary's deadline."""
        return await self.call(model, backend, version, inputs, request_id)
