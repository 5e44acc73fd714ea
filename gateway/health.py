"""Active health checks: per model and backend, every `health_interval_s`; they feed breakers and readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from gateway.backends.base import Backend
from gateway.breaker import CircuitBreaker
from gateway.metadata import MetadataRegistry, ModelMetadata, TensorMeta
from gateway.settings import Route

log = logging.getLogger(__name__)


def declared_metadata(name: str, route: Route) -> ModelMetadata | None:
    """The signature declared in the routes file, as ModelMetadata."""
    if route.signature is None:
        return None
    inputs = tuple(TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in route.signature.inputs)
    outputs = tuple(TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in route.signature.outputs)
    return ModelMetadata(name, tuple(route.versions), "declared", inputs, outputs)


class HealthMonitor:
    """Keeps `registry` true to what each backend can serve now.

    A model whose probe fails `failures` times in a row stops being routed to that backend (TorchServe's
    `/ping` stays Healthy while a model's worker crash-loops, so only a per-model probe tells); the backend's breaker
    hears whether any of its models answered. A backend missing for some model is re-fetched each round,
    so it comes back by itself once it answers again.
    """

    def __init__(
        self,
        backends: Mapping[str, Backend],
        breakers: Mapping[str, CircuitBreaker],
        registry: MetadataRegistry,
        routes: Mapping[str, Route],
        interval_s: float,
        failures: int = 3,
    ) -> None:
        self.backends = backends
        self.breakers = breakers
        self.registry = registry
        self.routes = routes
        self.interval_s = interval_s
        self.failures = failures
        self._strikes: dict[tuple[str, str], int] = {}
        """Consecutive failed probes per (model, backend)."""
        self.rounds = 0
        """Completed check rounds (tests wait on it)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the check loop in the background (inside the running loop)."""
        self._task = asyncio.create_task(self._loop(), name="health")

    async def close(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh_metadata(self) -> None:
        """Fetch every routed model's metadata from every backend and recompute agreement."""

        def fetcher(backend: Backend):  # type: ignore[no-untyped-def]
            async def fetch(model: str, version: str) -> ModelMetadata:
                return await backend.metadata(model, version, declared_metadata(model, self.routes[model]))

            return fetch

        await self.registry.refresh({name: fetcher(b) for name, b in self.backends.items()})
        for state in self.registry.models.values():
            if not state.ready or state.reason:
                log.warning(
                    "model metadata",
                    extra={"fields": {"model": state.name, "ready": state.ready, "reason": state.reason}},
                )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the loop must survive anything a check throws
                log.exception("health check failed")
            self.rounds += 1

    async def check(self) -> None:
        """One round: probe every (backend, model), update breakers and who serves what, re-fetch the missing."""
        failed: list[tuple[str, str]] = []
        for name, backend in self.backends.items():
            results = {model: await backend.healthy(model) for model in self.registry.models}
            self.breakers[name].health_result(any(results.values()) if results else True)
            for model, ok in results.items():
                strikes = 0 if ok else self._strikes.get((model, name), 0) + 1
                self._strikes[(model, name)] = strikes
                if not ok and self.registry.serves(model, name):
                    fields = {"model": model, "backend": name, "failed_probes": strikes}
                    log.warning("model unhealthy", extra={"fields": fields})
                if strikes >= self.failures:
                    failed.append((model, name))
        if self.registry.incomplete(self.backends):
            await self.refresh_metadata()
        for model, name in failed:  # metadata may still answer while inference fails: the probe decides
            self.registry.mark_unhealthy(model, name)
