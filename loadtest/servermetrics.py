"""Server-side time per request, from each server's own Prometheus counters, scraped during a point.

TorchServe (metrics port, `metrics_mode=prometheus`): `ts_queue_latency_microseconds` and
`ts_inference_latency_microseconds` are sums of µs over `ts_inference_requests_total` requests; inference
latency runs from the job's creation to its response, so it contains the queue: compute = inference - queue.
Observed on 0.12.0: only REST inference updates the two latency sums (gRPC Predictions count requests but
add no latency), and they carry model_version="default"; so TorchServe's split is taken for direct REST
targets only, counting the "default" series.
TF Serving (`/monitoring/prometheus/metrics`): `:tensorflow:serving:request_latency` histogram (µs, its
`_sum` and `_count`, labelled with the entrypoint REST or GRPC), and with batching on the real server
`...:batching_session:queuing_latency`.
Only sums and counts are used: means are exact from counters, percentiles from buckets would not be.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TS_REQUESTS = "ts_inference_requests_total"
TS_INFERENCE_US = "ts_inference_latency_microseconds"
TS_QUEUE_US = "ts_queue_latency_microseconds"
TF_LATENCY = ":tensorflow:serving:request_latency"
TF_QUEUING = ":tensorflow:serving:batching_session:queuing_latency"
_SAMPLE = re.compile(r"^([^\s{]+)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Loopback and compose names only: an http_proxy in the environment must never see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))
    return out


def _total(samples: list[tuple[str, dict[str, str], float]], name: str, model: str | None, **match: str) -> float:
    return sum(
        v
        for n, labels, v in samples
        if n == name
        and model in (None, labels.get("model_name"))
        and all(labels.get(k, "").lower() == w.lower() for k, w in match.items())
    )


def counters(framework: str, model: str, text: str, entrypoint: str | None = None) -> dict[str, float]:
    """The cumulative counters this module uses, for one model, from one scrape (TF: of one entrypoint,
    'REST' or 'GRPC', when given)."""
    s = parse(text)
    if framework == "torchserve":
        return {
            "requests": _total(s, TS_REQUESTS, model, model_version="default"),
            "inference_us": _total(s, TS_INFERENCE_US, model),
            "queue_us": _total(s, TS_QUEUE_US, model),
        }
    where = {"entrypoint": entrypoint} if entrypoint else {}
    out = {
        "requests": _total(s, TF_LATENCY + "_count", model, **where),
        "inference_us": _total(s, TF_LATENCY + "_sum", model, **where),
    }
    if any(n == TF_QUEUING + "_count" for n, _, _ in s):  # process-wide (no model label) on the real server
        out |= {"queued": _total(s, TF_QUEUING + "_count", None), "queue_us": _total(s, TF_QUEUING + "_sum", None)}
    return out


def fetch(url: str, timeout_s: float = 2.0) -> str:
    """GET a metrics page (raises OSError when it cannot)."""
    with _OPENER.open(url, timeout=timeout_s) as resp:
        return str(resp.read().decode("utf-8", "replace"))


@dataclass
class Scraper:
    """Samples one server's counters for one model while a point runs: (perf_counter s, counters)."""

    framework: str
    model: str
    url: str
    entrypoint: str | None = None
    """TF only: count requests of this entrypoint ('REST' or 'GRPC'); None: all."""
    fetcher: Callable[[str], str] = fetch
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    error: str | None = None

    def sample(self, now: float | None = None) -> None:
        """Take one sample; a failed scrape is remembered once and never raises."""
        try:
            text = self.fetcher(self.url)
        except OSError as err:
            self.error = f"{self.url}: {err}"
            return
        values = counters(self.framework, self.model, text, self.entrypoint)
        self.samples.append((time.perf_counter() if now is None else now, values))

    def between(self, t_from: float, t_to: float) -> dict[str, Any] | None:
        """Mean server-side time per request over [t_from, t_to]: the last sample at or before `t_from`
        and the first at or after `t_to` (or the nearest there is); None without two usable samples."""
        if len(self.samples) < 2:
            return None
        before = [s for s in self.samples if s[0] <= t_from] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t_to] or self.samples[-1:]
        (t0, a), (t1, b) = before[-1], after[0]
        n = b.get("requests", 0.0) - a.get("requests", 0.0)
        if t1 <= t0 or n <= 0 or b["inference_us"] <= a["inference_us"]:
            return None
        inference_ms = (b["inference_us"] - a["inference_us"]) / n / 1000
        out: dict[str, Any] = {
            "source": "ts_* counters" if self.framework == "torchserve" else "request_latency _sum/_count",
            "requests": int(n),
            "interval_s": round(t1 - t0, 3),
            "server_ms": round(inference_ms, 4),
            "queue_ms": None,
            "compute_ms": None,
        }
        if "queue_us" in b:
            queued = b.get("queued", b["requests"]) - a.get("queued", a["requests"])
            if queued > 0:
                queue_ms = (b["queue_us"] - a["queue_us"]) / queued / 1000
                out["queue_ms"] = round(queue_ms, 4)
                out["compute_ms"] = round(max(0.0, inference_ms - queue_ms), 4)
        return out


def metrics_url(framework: str, base: str) -> str:
    """The metrics page of a server whose metrics port answers at `base` ('http://host:port')."""
    return base + ("/metrics" if framework == "torchserve" else "/monitoring/prometheus/metrics")
