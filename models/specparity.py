"""Parity of a spec's two artifacts, both loaded back from disk: max |Δ| per output, and the worst input."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from models import modelspec
from models.modelspec import ModelSpecFile, SpecError
from models.registry import TensorSpec
from models.specerrors import ParityError


def prove_parity(
    spec: ModelSpecFile, torch_model: Any, mar: Path, version_dir: Path, outputs: tuple[TensorSpec, ...]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Run both artifacts from disk at batch 1 and parity_batch; return max |Δ| per output and the reference."""
    from models import tfexport

    diffs = {t.name: 0.0 for t in outputs}
    worst: dict[str, tuple[float, int, int]] = {}
    failing: set[str] = set()
    reference: dict[str, np.ndarray] = {}
    atol, rtol = spec.tolerance.atol, spec.tolerance.rtol
    with tempfile.TemporaryDirectory() as unpacked:
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(unpacked)
        loader = modelspec.import_file(Path(unpacked) / "twinserve_model.py")
        signature = loader.read_signature(unpacked)
        try:
            served = loader.load(unpacked)
        except Exception as exc:
            raise SpecError(
                f"{spec.path}: the model cannot be rebuilt from the .mar, which packs only the spec file and the "
                f"weights: {type(exc).__name__}: {exc}. Make the spec self-contained (top-level imports of torch, "
                "numpy and installed packages only)"
            ) from exc
        for batch in (1, spec.parity_batch):
            inputs = spec.example_inputs(batch)
            torch_out = loader.forward(served, inputs, signature)
            fresh = modelspec.run_torch(torch_model, inputs)
            for t, array in zip(outputs, fresh, strict=True):
                if not np.allclose(torch_out[t.name], array, atol=atol, rtol=rtol):
                    raise SpecError(
                        f"{spec.path}: the model rebuilt from the .mar (architecture() + state_dict) answers "
                        f"differently from build() on output {t.name!r}: make architecture() build the same module"
                    )
            tf_out = tfexport.run_savedmodel(version_dir, inputs)
            for t in outputs:
                ref, got = torch_out[t.name], tf_out[t.name]
                delta = np.abs(ref.astype(np.float64) - got.astype(np.float64))
                rows = delta.reshape(batch, -1).max(axis=1)
                if float(rows.max()) >= diffs[t.name]:
                    diffs[t.name] = float(rows.max())
                    worst[t.name] = (float(rows.max()), batch, int(rows.argmax()))
                if not np.all(delta <= atol + rtol * np.abs(ref.astype(np.float64))):
                    failing.add(t.name)
            for key, array in inputs.items():
                reference[f"b{batch}/in/{key}"] = array
            for key, array in torch_out.items():
                reference[f"b{batch}/out/{key}"] = array
    if failing:
        lines = [f"parity failed: the SavedModel and the .mar disagree beyond atol={atol:g} + rtol={rtol:g}·|torch|"]
        for t in outputs:
            value, batch, row = worst[t.name]
            verdict = "FAIL" if t.name in failing else "ok"
            lines.append(f"  output {t.name!r}: max |Δ| {value:.3g} ({verdict}; worst at batch {batch}, row {row})")
        name = max(failing, key=lambda n: worst[n][0])
        _, batch, row = worst[name]
        shown = {k: np.array2string(v[row], threshold=16, precision=4) for k, v in spec.example_inputs(batch).items()}
        lines.append(
            f"  worst input: example_inputs({batch})[row {row}]: " + ", ".join(f"{k}={v}" for k, v in shown.items())
        )
        lines.append("  check build_keras() against forward layer by layer (README: when parity fails)")
        raise ParityError("\n".join(lines))
    return diffs, reference
