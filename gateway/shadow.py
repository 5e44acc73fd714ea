"""The shadow policy's mirror: a bounded queue off the request path, outputs compared, mismatches counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from gateway.telemetry import Metrics
from gateway.tensors import InferTensor

log = logging.getLogger(__name__)

# (model, backend, version, inputs, request_id) -> outputs
ShadowCall = Callable[[str, str, str | None, list[InferTensor], str], Awaitable[list[InferTensor]]]


@dataclass
class Comparison:
    """How far a shadow's outputs are from the primary's."""

    max_abs_diff: float
    top1_equal: bool
    names_equal: bool


def compare(primary: list[InferTensor], shadow: list[InferTensor]) -> Comparison:
    """Max absolute difference over common outputs, and whether the arg-max (top-1) agrees per row."""
    a = {t.name: t.data for t in primary}
    b = {t.name: t.data for t in shadow}
    common = sorted(set(a) & set(b))
    diff, top1 = 0.0, True
    for name in common:
        x, y = np.asarray(a[name], dtype=np.float64), np.asarray(b[name], dtype=np.float64)
        if x.shape != y.shape:
            return Comparison(float("inf"), False, set(a) == set(b))
        if x.size:
            diff = max(diff, float(np.max(np.abs(x - y))))
            if x.ndim >= 1:
                top1 = top1 and bool(np.array_equal(np.argmax(x, axis=-1), np.argmax(y, axis=-1)))
    return Comparison(diff, top1, set(a) == set(b))


@dataclass
class _Job:
    model: str
    version: str | None
    backend: str
    inputs: list[InferTensor]
    primary: list[InferTensor]
    request_id: str


class ShadowMirror:
    """Mirrors requests to the shadow backend off the request path; a full queue drops and counts."""

    def __init__(self, call: ShadowCall, metrics: Metrics, queue_size: int, workers: int, tolerance: float) -> None:
        self.call = call
        self.metrics = metrics
        self.tolerance = tolerance
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self.workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the worker tasks (inside the running loop)."""
        self._tasks = [asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self.workers)]

    async def close(self) -> None:
        """Stop the workers; queued mirrors are abandoned (they never affect a client)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(
        self,
        model: str,
        version: str | None,
        backend: str,
        inputs: list[InferTensor],
        primary: list[InferTensor],
        request_id: str,
    ) -> bool:
        """Queue one mirror without waiting; False (and a count) when the queue is full."""
        try:
            self.queue.put_nowait(_Job(model, version, backend, inputs, primary, request_id))
        except asyncio.QueueFull:
            self.metrics.shadow_dropped.labels(model, "queue_full").inc()
            return False
        return True

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._mirror(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed mirror is counted, never surfaced
                self.metrics.shadow_dropped.labels(job.model, "shadow_error").inc()
                log.info(
                    "shadow call failed",
                    extra={"fields": {"model": job.model, "backend": job.backend, "error": type(exc).__name__}},
                )
            finally:
                self.queue.task_done()

    async def _mirror(self, job: _Job) -> None:
        outputs = await self.call(job.model, job.backend, job.version, job.inputs, job.request_id)
        result = compare(job.primary, outputs)
        m = self.metrics
        m.shadow_comparisons.labels(job.model).inc()
        m.shadow_max_abs_diff.labels(job.model).observe(min(result.max_abs_diff, 1e9))
        if not result.names_equal:
            m.shadow_mismatches.labels(job.model, "outputs").inc()
        elif not result.top1_equal:
            m.shadow_mismatches.labels(job.model, "top1").inc()
        elif result.max_abs_diff > self.tolerance:
            m.shadow_mismatches.labels(job.model, "tolerance").inc()
