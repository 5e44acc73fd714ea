"""The floor: each framework's in-process forward latency for the served inputs, by the same recorder.

torch runs the .mar's own files (its handler loading spec.py + weights.pt, as a TorchServe worker would);
TensorFlow runs the SavedModel's `serving_default` signature. Serving overhead = served p50 / floor p50.
  python -m loadtest.floor --models digits --batches 1,8,32 --out results/floor.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from loadtest.recorder import Recorder
from loadtest.samples import load_reference
from loadtest.stats import latency_summary
from loadtest.users.codecs import is_right

Forward = Callable[[np.ndarray], np.ndarray]


def torch_forward(artifacts: Path, model: str, workdir: Path) -> tuple[Forward, str]:
    """Logits function from the unpacked .mar, and the engine's name."""
    import torch

    from models.parity import load_served

    with zipfile.ZipFile(artifacts / "torchserve" / f"{model}.mar") as mar:
        mar.extractall(workdir)
    served = load_served(workdir)
    return (lambda x: served.forward({"input": x})["logits"]), f"torch {torch.__version__}"


def tf_forward(artifacts: Path, model: str) -> tuple[Forward, str]:
    """Logits function from the SavedModel's serving signature, and the engine's name."""
    import tensorflow as tf

    from models.specs import get_spec

    sig = tf.saved_model.load(str(artifacts / "tfserving" / model / str(get_spec(model).version)))
    fn = sig.signatures["serving_default"]
    return (lambda x: fn(input=tf.constant(x))["logits"].numpy()), f"tensorflow {tf.__version__}"


def measure(fn: Forward, x: np.ndarray, expected: np.ndarray, iters: int, warmup: int, budget_s: float) -> Recorder:
    """Time `iters` calls (after `warmup` unrecorded ones), bounded by `budget_s`; answers are checked."""
    rec = Recorder("floor")
    deadline = time.perf_counter() + budget_s
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        out = fn(x)
        t1 = time.perf_counter()
        if i >= warmup:
            rec.record(t0, t0, t1, "ok" if is_right(np.asarray(out), expected) else "wrong")
        if t1 > deadline:
            break
    return rec


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
        ref = load_reference(model, artifacts)
        with tempfile.TemporaryDirectory() as tmp:
            engines = {
                "torchserve": torch_forward(artifacts, model, Path(tmp)),
                "tfserving": tf_forward(artifacts, model),
            }
            for framework, (fn, engine) in engines.items():
                for b in batches:
                    idx = [i % len(ref.inputs) for i in range(b)]
                    rec = measure(fn, ref.inputs[idx], ref.logits[idx], iters, max(5, iters // 10), budget_s)
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
