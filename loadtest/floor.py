"""The floor: each framework's in-process forward latency for the served inputs, by the same recorder.

Every model the bench can serve has a registration (models/registry.py; the zoo's are written by `make export`),
so one path covers them all. torch runs the .mar's own files (its handler loading spec.py + weights.pt, as a
TorchServe worker would); TensorFlow runs the SavedModel's `serving_default` signature with the inputs by name.
Inputs are the registration's reference rows and every answer is checked against the torch reference within the
registered tolerance. Serving overhead = served p50 / floor p50.
  python -m loadtest.floor --models digits,textclf --batches 1,8 --out results/floor.json
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from loadtest import registered
from loadtest.recorder import Recorder
from loadtest.stats import latency_summary
from loadtest.users.codecs import is_right

Tensors = dict[str, np.ndarray]
Forward = Callable[[Any], Any]


def torch_forward(artifacts: Path, model: str, workdir: Path) -> tuple[Callable[[Tensors], Tensors], str]:
    """Outputs by name from the unpacked .mar, through its own handler as a TorchServe worker initialises it (the
    generic handler's load and forward, without the server around it), and the engine's name."""
    import torch

    from models.parity import load_served

    reg = registered.load(model, artifacts).model
    with zipfile.ZipFile(artifacts.resolve().parent / reg.artifacts["mar"]) as mar:
        mar.extractall(workdir)
    served = load_served(workdir)
    return served.forward, f"torch {torch.__version__}"


def tf_forward(artifacts: Path, model: str) -> tuple[Callable[[Tensors], Tensors], str]:
    """Outputs by name from the SavedModel's serving signature (inputs by name), and the engine's name."""
    import tensorflow as tf

    reg = registered.load(model, artifacts).model
    loaded = tf.saved_model.load(str(artifacts.resolve().parent / reg.artifacts["savedmodel"] / str(reg.version)))
    fn = loaded.signatures["serving_default"]

    def forward(x: Tensors) -> Tensors:
        return {name: value.numpy() for name, value in fn(**{k: tf.constant(v) for k, v in x.items()}).items()}

    return forward, f"tensorflow {tf.__version__}"


def measure(
    fn: Forward,
    x: Any,
    expected: Any,
    iters: int,
    warmup: int,
    budget_s: float,
    right: Callable[[Any, Any], bool] = lambda got, want: is_right(np.asarray(got), want),
) -> Recorder:
    """Time `iters` calls of `fn(x)` (after `warmup` unrecorded ones), bounded by `budget_s`; every answer is
    checked with `right(answer, expected)` (default: logits, top-1 equal and within 1e-3)."""
    rec = Recorder("floor")
    deadline = time.perf_counter() + budget_s
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        out = fn(x)
        t1 = time.perf_counter()
        if i >= warmup:
            rec.record(t0, t0, t1, "ok" if right(out, expected) else "wrong")
        if t1 > deadline:
            break
    return rec


def _within(got: Tensors, want: Tensors, atol: float, rtol: float) -> bool:
    return registered.close(got, want, atol, rtol)


def floor_entries(
    artifacts: Path,
    models: list[str],
    batches: list[int],
    iters: int,
    budget_s: float,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """summary.json `floor` entries for both frameworks, every model and batch size."""
    out: list[dict[str, Any]] = []
    for model in models:
        ref = registered.load(model, artifacts)
        right = functools.partial(_within, atol=ref.model.tolerance.atol, rtol=ref.model.tolerance.rtol)
        with tempfile.TemporaryDirectory() as tmp:
            engines = {
                "torchserve": torch_forward(artifacts, model, Path(tmp)),
                "tfserving": tf_forward(artifacts, model),
            }
            for framework, (fn, engine) in engines.items():
                for b in batches:
                    idx = [i % len(ref) for i in range(b)]
                    x = {k: np.ascontiguousarray(v[idx]) for k, v in ref.inputs.items()}
                    want = {k: v[idx] for k, v in ref.outputs.items()}
                    rec = measure(fn, x, want, iters, max(5, iters // 10), budget_s, right)
                    if rec.totals.counts["wrong"]:
                        raise RuntimeError(f"{framework} {model}: in-process answers differ from the reference")
                    out.append(
                        {
                            "framework": framework,
                            "model": model,
                            "batch": b,
                            "engine": engine,
                            "latency_ms": latency_summary(rec.totals.from_send),
                        }
                    )
                    if progress is not None:
                        progress.console.print(f"{framework} {model} batch {b}: p50 {out[-1]['latency_ms']['p50']} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m loadtest.floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--models", default="digits")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds at most per framework, model and batch")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--out", type=Path, default=Path("results/floor.json"))
    args = ap.parse_args(argv)
    with Progress() as progress:
        entries = floor_entries(
            args.artifacts,
            args.models.split(","),
            [int(b) for b in args.batches.split(",")],
            args.iters,
            args.budget,
            progress,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
