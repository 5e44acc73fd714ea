"""Prometheus metrics under the real server's names, plus the stand-in's own marker and batching metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import tensorflow as tf
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from serving.tfserving.standin import STANDIN_NAME

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"
"""TensorFlow's own counter of SavedModel load time (µs, per model_path), as the real server exports it."""
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))
"""The real server's request_latency buckets: exponential, scale 10 us, growth 1.8, 33 buckets (~20 min)."""
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _RequestCount(Collector):
    """`:tensorflow:serving:request_count{model_name,status}` exactly as the real server names its samples.

    prometheus_client's Counter would append `_total`; scrapers written for TF Serving query the bare name.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def inc(self, model_name: str, status: str) -> None:
        with self._lock:
            key = (model_name, status)
            self._counts[key] = self._counts.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        metric = Metric(REQUEST_COUNT, "The total number of requests. (twinserve stand-in)", "unknown")
        with self._lock:
            counts = sorted(self._counts.items())
        for (model_name, status), value in counts:
            metric.add_sample(REQUEST_COUNT, {"model_name": model_name, "status": status}, value)
        yield metric


class _LoadLatency(Collector):
    """`:tensorflow:cc:saved_model:load_latency{model_path}` in microseconds, under the real server's bare name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._us: dict[str, float] = {}

    def add(self, model_path: str, seconds: float) -> None:
        with self._lock:
            self._us[model_path] = self._us.get(model_path, 0.0) + seconds * 1e6

    def collect(self) -> Iterator[Metric]:
        metric = Metric(LOAD_LATENCY, "Latency in microseconds for SavedModels that were loaded. (stand-in)", "unknown")
        with self._lock:
            loads = sorted(self._us.items())
        for path, us in loads:
            metric.add_sample(LOAD_LATENCY, {"model_path": path}, us)
        yield metric


class Metrics:
    """All metrics of one stand-in process, in their own registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        Info(
            "twinserve_tfserving_standin",
            "Marks every scrape of this endpoint as coming from the twinserve stand-in, not TF Serving.",
            registry=self.registry,
        ).info({"implementation": STANDIN_NAME, "tensorflow_version": tf.__version__})
        self._count = _RequestCount()
        self.registry.register(self._count)
        self._load = _LoadLatency()
        self.registry.register(self._load)
        self._latency = Histogram(
            REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request. (stand-in)",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self._batch_size = Histogram(
            "twinserve_tfserving_standin_batch_size",
            "Rows from requests in each batch the stand-in's server-side batcher ran (before padding).",
            ["model_name"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self._padding = Counter(
            "twinserve_tfserving_standin_batch_padding_rows",
            "Rows added to batches to reach an allowed_batch_sizes entry.",
            ["model_name"],
            registry=self.registry,
        )

    def record_request(self, model: str, status: str, api: str, entrypoint: str, latency_us: float) -> None:
        """Count one Predict-like request; as the real server, only successful ones enter the latency."""
        self._count.inc(model, status)
        if status == "OK":
            self._latency.labels(model, api, entrypoint).observe(latency_us)

    def record_load(self, model_path: str, seconds: float) -> None:
        """Count the time one SavedModel version took to load (warm-up replay not included, as in TensorFlow)."""
        self._load.add(model_path, seconds)

    def record_batch(self, model_name: str, rows: int, padded_rows: int) -> None:
        """Record one batch run by the batcher."""
        self._batch_size.labels(model_name).observe(rows)
        if padded_rows > rows:
            self._padding.labels(model_name).inc(padded_rows - rows)

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)
