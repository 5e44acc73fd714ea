"""The server-side batching knobs of both stacks side by side: which agree, and what no setting can make equal.

TorchServe sets them per model (model-config/<model>.yaml, packed into the .mar) plus `job_queue_size` in
config.properties; TF Serving in one BatchingParameters file. The pairs compared here are the ones both servers
have; `DIFFERENCES` are the ones they do not share, stated in every report's environment section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[1]
TS_MODEL_CONFIGS = REPO / "serving" / "torchserve" / "model-config"
TS_PROPERTIES = REPO / "serving" / "torchserve" / "config.properties"
TF_BATCHING = REPO / "serving" / "tfserving" / "batching_parameters.txt"
TS_DEFAULT_QUEUE = 100  # TorchServe 0.12's job_queue_size when config.properties leaves it out

DIFFERENCES = (
    "Batch size unit: TorchServe's batchSize counts requests, TF Serving's max_batch_size counts rows; they agree "
    "only while every request carries one row (the bench's default batch of 1).",
    "Threads: TorchServe's workers belong to one model each; TF Serving's num_batch_threads are shared by every "
    "model it serves, so with two models busy at once TF has half the per-model batch parallelism.",
    "Queue: TorchServe's job_queue_size holds requests waiting for a worker; TF Serving's max_enqueued_batches "
    "holds batches (x max_batch_size rows); equal sizes in rows only for one-row requests.",
    "Padding: TorchServe never pads a batch; TF Serving pads to allowed_batch_sizes when set (here: unset, so "
    "neither pads).",
    "Intra-op threads inside a batch: each framework's own default (torch and TensorFlow use every core).",
)


def _textproto(text: str, name: str) -> list[int]:
    """Every integer value of `name` in a text-format BatchingParameters (`name: 1` or `name { value: 1 }`)."""
    pattern = rf"^\s*{re.escape(name)}\s*(?::\s*(\d+)|\{{\s*value\s*:\s*(\d+)\s*\}})"
    return [int(a or b) for a, b in re.findall(pattern, text, re.M)]


def tfserving_knobs(text: str) -> dict[str, Any]:
    """The knobs of a BatchingParameters file, with TF Serving's defaults for what it leaves out."""

    def one(name: str, default: int | None) -> int | None:
        values = _textproto(text, name)
        return values[0] if values else default

    return {
        "max_batch_size": one("max_batch_size", 1000),
        "batch_timeout_micros": one("batch_timeout_micros", 0),
        "num_batch_threads": one("num_batch_threads", None),
        "max_enqueued_batches": one("max_enqueued_batches", 10),
        "allowed_batch_sizes": _textproto(text, "allowed_batch_sizes"),
    }


def torchserve_knobs(model_yaml: str, properties: str) -> dict[str, Any]:
    """One model's knobs: its model-config YAML and the server's config.properties."""
    cfg = yaml.safe_load(model_yaml) or {}
    props = dict(
        line.split("=", 1) for line in properties.splitlines() if "=" in line and not line.lstrip().startswith("#")
    )
    return {
        "batchSize": cfg.get("batchSize", 1),
        "maxBatchDelay": cfg.get("maxBatchDelay", 100),
        "minWorkers": cfg.get("minWorkers"),
        "maxWorkers": cfg.get("maxWorkers"),
        "job_queue_size": int(props.get("job_queue_size", TS_DEFAULT_QUEUE)),
    }


def disagreements(ts: dict[str, Any], tf: dict[str, Any]) -> list[str]:
    """Where the shared knobs differ (empty: equivalent as far as the servers allow)."""
    out = []
    if ts["batchSize"] != tf["max_batch_size"]:
        out.append(f"batch size: batchSize {ts['batchSize']} vs max_batch_size {tf['max_batch_size']}")
    if ts["maxBatchDelay"] * 1000 != tf["batch_timeout_micros"]:
        out.append(f"batch delay: maxBatchDelay {ts['maxBatchDelay']} ms vs {tf['batch_timeout_micros']} µs")
    if not (ts["minWorkers"] == ts["maxWorkers"] == tf["num_batch_threads"]):
        out.append(
            f"batches at once: workers {ts['minWorkers']}..{ts['maxWorkers']} vs num_batch_threads "
            f"{tf['num_batch_threads']}"
        )
    queued_rows = tf["max_enqueued_batches"] * tf["max_batch_size"]
    if ts["job_queue_size"] != queued_rows:
        out.append(
            f"queue: job_queue_size {ts['job_queue_size']} vs max_enqueued_batches x max_batch_size {queued_rows}"
        )
    if tf["allowed_batch_sizes"]:
        out.append(f"padding: TF Serving pads to {tf['allowed_batch_sizes']}, TorchServe never pads")
    return out


def compare(
    model_configs: Path = TS_MODEL_CONFIGS, properties: Path = TS_PROPERTIES, batching: Path = TF_BATCHING
) -> dict[str, Any]:
    """Both stacks' knobs per model, what disagrees, and the differences no setting removes."""
    tf = tfserving_knobs(batching.read_text(encoding="utf-8"))
    props = properties.read_text(encoding="utf-8")
    models = {}
    for path in sorted(model_configs.glob("*.yaml")):
        ts = torchserve_knobs(path.read_text(encoding="utf-8"), props)
        models[path.stem] = {"torchserve": ts, "disagreements": disagreements(ts, tf)}
    return {"tfserving": tf, "models": models, "differences": list(DIFFERENCES)}
