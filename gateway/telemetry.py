"""Prometheus metrics (one registry per app), structured JSON logs, and the request-id context."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits, like uuid4().hex without its syscall and object per request."""
    return f"{random.getrandbits(128):032x}"


def after_answer(record: Callable[..., None], *args: Any) -> None:
    """Run `record(*args)` once the running task gives the event loop back: the task that finishes a request writes
    its answer to the socket in the same step, so the metrics' bookkeeping (locks, bucket searches: about 10 µs a
    request, several times that on an idle process) never stands between an answer and its client. Outside an
    event loop, at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        record(*args)
        return
    loop.call_soon(record, *args)


LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
DIFF_BUCKETS = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def status_class(status: int) -> str:
    """Bounded label for a status: 2xx, 4xx, 5xx."""
    return f"{status // 100}xx"


class Metrics:
    """All gateway metrics, registered on the app's own registry (or written for multiprocess mode)."""

    def __init__(self, multiproc_dir: Path | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        # In multiprocess mode the values live in mmap files; the registry is only for exposition.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        prefix = "twinserve_gateway_"
        req = ["model", "backend", "protocol", "status_class"]
        self.request_duration = Histogram(
            prefix + "request_duration_seconds",
            "Gateway request latency, receipt to response.",
            req,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            prefix + "upstream_duration_seconds",
            "Latency of one upstream call.",
            ["model", "backend", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(prefix + "requests", "Requests answered by the gateway.", req, registry=r)
        self.in_flight = Gauge(
            prefix + "in_flight_requests",
            "Upstream calls in flight.",
            ["backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.shadow_comparisons = Counter(
            prefix + "shadow_comparisons",
            "Shadow responses compared with the primary.",
            ["model"],
            registry=r,
        )
        self.shadow_mismatches = Counter(
            prefix + "shadow_mismatches",
            "Shadow comparisons over tolerance or with a different top-1.",
            ["model", "kind"],
            registry=r,
        )
        self.shadow_max_abs_diff = Histogram(
            prefix + "shadow_max_abs_diff",
            "Largest absolute output difference per shadow comparison.",
            ["model"],
            buckets=DIFF_BUCKETS,
            registry=r,
        )
        self.shadow_dropped = Counter(
            prefix + "shadow_dropped",
            "Mirrors dropped (queue full or shadow failed).",
            ["model", "reason"],
            registry=r,
        )
        self.circuit_state = Gauge(
            prefix + "circuit_state",
            "Circuit breaker state per backend: 0 closed, 1 half-open, 2 open.",
            ["backend"],
            registry=r,
            multiprocess_mode="max",
        )
        self.rejections = Counter(
            prefix + "rejections", "Requests refused before reaching a backend.", ["reason"], registry=r
        )
        self.failovers = Counter(
            prefix + "failovers",
            "Requests retried on the other backend.",
            ["model", "from_backend"],
            registry=r,
        )

        # labels() hashes and validates its arguments on every call; the label sets are bounded, so keep the children
        self._request_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._upstream_children: dict[tuple[str, ...], Any] = {}
        self._in_flight_children: dict[str, Any] = {}

    def observe_request(self, model: str, backend: str, protocol: str, status: str, seconds: float) -> None:
        """Count one answered request and record its duration (after_answer: once the answer is on its way)."""
        after_answer(self._observe_request, (model, backend, protocol, status), seconds)

    def _observe_request(self, key: tuple[str, str, str, str], seconds: float) -> None:
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (self.requests.labels(*key), self.request_duration.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def observe_upstream(self, model: str, backend: str, outcome: str, seconds: float) -> None:
        """Record the duration of one upstream call (after_answer: once the answer is on its way)."""
        after_answer(self._observe_upstream, (model, backend, outcome), seconds)

    def _observe_upstream(self, key: tuple[str, str, str], seconds: float) -> None:
        child = self._upstream_children.get(key)
        if child is None:
            child = self._upstream_children[key] = self.upstream_duration.labels(*key)
        child.observe(seconds)

    def in_flight_of(self, backend: str) -> Any:
        """The in-flight gauge of one backend."""
        child = self._in_flight_children.get(backend)
        if child is None:
            child = self._in_flight_children[backend] = self.in_flight.labels(backend)
        return child

    def exposition(self) -> bytes:
        """The text exposition: this registry, or all workers' files in multiprocess mode."""
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiproc_dir))
        return generate_latest(merged)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, message, request id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, as_json: bool) -> None:
    """Configure the `gateway` logger tree once (idempotent)."""
    logger = logging.getLogger("gateway")
    logger.setLevel(level.upper())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger.handlers = [handler]
    logger.propagate = False
