"""A registered test model built from scratch: two inputs (FP32, INT64), two outputs (FP32, INT64).

`pairs`: score = features @ W + mean(embedding[ids]) @ V + b, count = number of ids >= 5 (per row).
Exported to both stacks like a user's model: torch.export into a .mar with the generic handler and
signature.json, an equivalent tf.Module as a SavedModel, torch reference outputs in reference.npz, and a
twinserve.model/1 registration in models.d/pairs/model.json under the given root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from models import registry

REPO = Path(__file__).resolve().parents[2]
NAME = "pairs"
FEATURES, IDS, VOCAB, EMBED, CLASSES = 4, 3, 10, 6, 2
INPUTS = [
    {"name": "features", "datatype": "FP32", "shape": [-1, FEATURES]},
    {"name": "ids", "datatype": "INT64", "shape": [-1, IDS]},
]
OUTPUTS = [
    {"name": "score", "datatype": "FP32", "shape": [-1, CLASSES]},
    {"name": "count", "datatype": "INT64", "shape": [-1, 1]},
]
BATCHING = {"batchSize": 8, "maxBatchDelay": 100}
"""TorchServe batching of the fixture: a long delay so concurrent test requests share a batch."""


def example_inputs(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs with a leading batch dimension."""
    rng = np.random.default_rng(seed + batch)
    return {
        "features": rng.standard_normal((batch, FEATURES)).astype(np.float32),
        "ids": rng.integers(0, VOCAB, (batch, IDS)).astype(np.int64),
    }


def _torch_model():  # type: ignore[no-untyped-def]
    import torch

    class Pairs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, EMBED)
            self.dense = torch.nn.Linear(FEATURES, CLASSES)
            self.project = torch.nn.Linear(EMBED, CLASSES, bias=False)

        def forward(self, features: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            score = self.dense(features) + self.project(self.embedding(ids).mean(dim=1))
            count = (ids >= 5).sum(dim=1, keepdim=True).to(torch.int64)
            return score, count

    torch.manual_seed(13)
    return Pairs().eval()


def _write_mar(model, root: Path, staging: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    example = tuple(torch.from_numpy(v) for v in example_inputs(2).values())
    program = torch.export.export(model, example, dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, staging / "model.pt2")
    signature = {"name": NAME, "version": 1, "inputs": INPUTS, "outputs": OUTPUTS, "max_batch": 32}
    (staging / "signature.json").write_text(json.dumps(signature))
    config = {"minWorkers": 1, "maxWorkers": 1, "responseTimeout": 60, **BATCHING}
    (staging / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in config.items()))
    store = root / "artifacts" / "torchserve"
    store.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(Path(sys.executable).with_name("torch-model-archiver")), "--model-name", NAME, "--version", "1.0",
            "--serialized-file", str(staging / "model.pt2"),
            "--handler", str(REPO / "serving" / "torchserve" / "generic_handler.py"),
            "--extra-files", str(staging / "signature.json"),
            "--config-file", str(staging / "config.yaml"),
            "--export-path", str(store), "--force",
        ],
        check=True,
    )  # fmt: skip
    return store / f"{NAME}.mar"


def _write_savedmodel(model, root: Path) -> Path:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = tf.Variable(state["embedding.weight"])
            self.w = tf.Variable(state["dense.weight"].T)
            self.b = tf.Variable(state["dense.bias"])
            self.v = tf.Variable(state["project.weight"].T)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, FEATURES), tf.float32, name="features"),
                tf.TensorSpec((None, IDS), tf.int64, name="ids"),
            ]
        )
        def serve(self, features: tf.Tensor, ids: tf.Tensor) -> dict[str, tf.Tensor]:
            embedded = tf.reduce_mean(tf.gather(self.table, ids), axis=1)
            score = tf.matmul(features, self.w) + self.b + tf.matmul(embedded, self.v)
            count = tf.reduce_sum(tf.cast(ids >= 5, tf.int64), axis=1, keepdims=True)
            return {"score": score, "count": count}

    module = Serving()
    target = root / "artifacts" / "tfserving" / NAME / "1"
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    return target.parent


def build(root: Path) -> Path:
    """Export the fixture under `root` (artifacts/ and models.d/); return its model.json."""
    import tempfile

    import torch

    model = _torch_model()
    with tempfile.TemporaryDirectory() as staging:
        _write_mar(model, root, Path(staging))
    _write_savedmodel(model, root)
    reference: dict[str, np.ndarray] = {}
    for batch in (1, 8):
        inputs = example_inputs(batch)
        with torch.no_grad():
            score, count = model(*(torch.from_numpy(v) for v in inputs.values()))
        reference |= {f"b{batch}/in/{k}": v for k, v in inputs.items()}
        reference |= {f"b{batch}/out/score": score.numpy(), f"b{batch}/out/count": count.numpy()}
    (root / "artifacts" / "reference").mkdir(parents=True, exist_ok=True)
    np.savez(root / "artifacts" / "reference" / f"{NAME}.npz", **reference)  # type: ignore[arg-type]
    registration = {
        "schema": "twinserve.model/1", "name": NAME, "version": 1, "builtin": False,
        "spec": str(Path(__file__).resolve()), "description": "test fixture: two inputs, two outputs, INT64 ids",
        "inputs": INPUTS, "outputs": OUTPUTS, "max_batch": 32,
        "tolerance": {"atol": 1e-5, "rtol": 1e-4}, "slo_p99_ms": 200, "converter": "keras-port",
        "artifacts": {"mar": f"artifacts/torchserve/{NAME}.mar", "savedmodel": f"artifacts/tfserving/{NAME}"},
        "reference": f"artifacts/reference/{NAME}.npz",
        "parity": {"max_abs_diff": {"score": 0.0, "count": 0.0}, "batches": [1, 8]},
    }  # fmt: skip
    path = registry.user_path(root, NAME)
    registry.write(path, registry.from_json(registration, source=str(path)))  # validated as add-model would
    return path


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
