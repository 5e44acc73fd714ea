"""`make parity`: prove both exported artifacts, loaded back from disk, compute the same function.

    python -m models.parity [--models digits,resnet18] [--artifacts artifacts] [--count 256]

The PyTorch side is unpacked from the .mar and run through the .mar's own handler (generic_handler.py: its
load and forward code, exactly as a TorchServe worker runs it); the TF side is the SavedModel's
serving_default signature. Fails (exit 1) when max |diff| > 1e-4 on any output or top-1 agreement < 100 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from models import modelspec
from models.specs import SPECS

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "zoo"
TOLERANCE = 1e-4
BATCH = 32
console = Console(stderr=True)


class WorkerContext:
    """The parts of a TorchServe worker's context a handler reads when it loads a model."""

    def __init__(self, model_dir: Path, gpu_id: int | None) -> None:
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": gpu_id}
        self.manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())


def load_served(model_dir: Path, gpu_id: int | None = None) -> Any:
    """The handler packed in an unpacked .mar, initialised as a TorchServe worker does (`.forward(inputs)`)."""
    context = WorkerContext(model_dir, gpu_id)
    handler = modelspec.import_file(model_dir / context.manifest["model"]["handler"])
    service = handler.SignatureHandler()
    service.initialize(context)
    return service


def parity_inputs(name: str, artifacts: Path, count: int) -> tuple[np.ndarray, str]:
    """digits: the held-out set shipped with the samples; resnet18: seeded random images."""
    if name == "digits":
        inputs = np.load(artifacts / "samples" / "digits.npz")["inputs"]
        return inputs, f"held-out set ({len(inputs)} images)"
    zoo = modelspec.import_file(ZOO / f"{name}.py")
    images = np.concatenate([zoo.seeded_images(min(BATCH, count - i), 1000 + i) for i in range(0, count, BATCH)])
    return images, f"{count} seeded random images"


def compare(name: str, artifacts: Path, count: int) -> dict[str, Any]:
    """Run both artifacts on the same inputs and summarise their differences."""
    import tensorflow as tf

    inputs, source = parity_inputs(name, artifacts, count)
    with tempfile.TemporaryDirectory() as unpacked:
        with zipfile.ZipFile(artifacts / "torchserve" / f"{name}.mar") as archive:
            archive.extractall(unpacked)
        served = load_served(Path(unpacked))
        torch_out = _batched(inputs, lambda b: served.forward({"input": b}))
    loaded = tf.saved_model.load(str(artifacts / "tfserving" / name / str(SPECS[name].version)))
    signature = loaded.signatures["serving_default"]
    tf_out = _batched(inputs, lambda b: {k: v.numpy() for k, v in signature(input=tf.constant(b)).items()})
    diffs = {k: float(np.max(np.abs(torch_out[k] - tf_out[k]))) for k in SPECS[name].output_names}
    top1 = float(np.mean(torch_out["logits"].argmax(1) == tf_out["logits"].argmax(1)))
    gaps = np.sort(torch_out["logits"], axis=1)
    return {
        "inputs": source,
        "count": len(inputs),
        "max_abs_diff": diffs,
        "top1_agreement": top1,
        "smallest_top1_margin": float(np.min(gaps[:, -1] - gaps[:, -2])),
        "tolerance": TOLERANCE,
        "passed": top1 == 1.0 and all(d <= TOLERANCE for d in diffs.values()),
    }


def _batched(inputs: np.ndarray, run: Any) -> dict[str, np.ndarray]:
    parts = [run(np.ascontiguousarray(inputs[i : i + BATCH])) for i in range(0, len(inputs), BATCH)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SPECS))
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--count", type=int, default=256, help="resnet18 inputs (digits uses its held-out set)")
    args = parser.parse_args(argv)
    results = {}
    with console.status("comparing exported artifacts..."):
        for name in args.models.split(","):
            results[name] = compare(name, args.artifacts, args.count)
    (args.artifacts / "parity.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table("model", "inputs", "max |diff| logits", "max |diff| probs", "top-1 agree", "verdict")
    for name, r in results.items():
        verdict = "[green]PASS" if r["passed"] else "[red]FAIL"
        d = r["max_abs_diff"]
        table.add_row(
            name, r["inputs"], f"{d['logits']:.2e}", f"{d['probabilities']:.2e}", f"{r['top1_agreement']:.2%}", verdict
        )
    console.print(table)
    console.print(f"written: {args.artifacts / 'parity.json'}")
    return 0 if all(r["passed"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
