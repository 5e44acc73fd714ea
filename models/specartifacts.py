"""The two artifacts of a spec: the TorchServe .mar and the TF SavedModel (weight port or onnx2tf).

The TF side is chosen by measurement (../shared/notes/converters-here.md, README "Bring your own model"): a spec
with build_keras() gets its weights ported by rules (models/portrules.py: exact on conv nets, MLPs and the
transformer with a padding mask); without it, torch -> ONNX -> onnx2tf 1.29.24 in .venv-convert (exact on conv
nets, max |Δ| 7.5e-8 here, but it fails on attention with a padding mask).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml  # type: ignore[import-untyped]
from rich.console import Console

from models import mar_loader
from models.modelspec import ModelSpecFile, SpecError
from models.registry import TensorSpec
from models.specerrors import ExportError, UnsupportedOpError

REPO = Path(__file__).resolve().parent.parent
HANDLER = REPO / "serving" / "torchserve" / "generic_handler.py"
"""The one TorchServe handler: signature-driven, it serves every .mar, the built-in zoo's included."""
CONVERT_VENV = ".venv-convert"
console = Console(stderr=True)


def write_mar(
    spec: ModelSpecFile, torch_model: Any, name: str, inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...], staging: Path, model_config: Path | None = None,
) -> Path:  # fmt: skip
    """<staging>/torchserve/<name>.mar: spec.py, weights.pt, signature.json, twinserve_model.py, batching config
    (`model_config` when given: the zoo's serving/torchserve/model-config/<name>.yaml, which deploy/ also reads)."""
    import torch

    files = staging / "mar"
    files.mkdir()
    torch.save(torch_model.state_dict(), files / mar_loader.WEIGHTS)
    shutil.copy(spec.path, files / mar_loader.SPEC)
    shutil.copy(Path(mar_loader.__file__), files / "twinserve_model.py")
    signature = {
        "name": name,
        "version": spec.version,
        "inputs": [t.to_json() for t in inputs],
        "outputs": [t.to_json() for t in outputs],
        "max_batch": spec.max_batch,
    }
    (files / mar_loader.SIGNATURE).write_text(json.dumps(signature, indent=2) + "\n")
    # Server-side batching like-for-like with TF Serving's batching parameters (at most 32, 2 ms wait), as agreed
    # with the serving side in BYOM-INTERFACE.md.
    config = {
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": min(spec.max_batch, 32),
        "maxBatchDelay": 2,
        "responseTimeout": 120,
    }
    if model_config is not None:
        shutil.copy(model_config, files / "model-config.yaml")
    else:
        (files / "model-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    target = staging / "torchserve"
    target.mkdir()
    extra = ",".join(str(files / f) for f in (mar_loader.SPEC, mar_loader.SIGNATURE, "twinserve_model.py"))
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    run = subprocess.run(
        [
            str(archiver), "--model-name", name, "--version", f"{spec.version}.0",
            "--serialized-file", str(files / mar_loader.WEIGHTS), "--handler", str(HANDLER),
            "--extra-files", extra, "--config-file", str(files / "model-config.yaml"),
            "--export-path", str(target),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode:
        raise ExportError(f"torch-model-archiver failed: {(run.stderr or run.stdout).strip()[-800:]}")
    return target / f"{name}.mar"


def write_savedmodel(
    spec: ModelSpecFile, torch_model: Any, name: str, inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...], version_dir: Path, staging: Path, root: Path,
) -> str:  # fmt: skip
    """The TF side under `version_dir`; returns the converter used ("keras-port" or "onnx2tf")."""
    from models import tfexport

    warmup = [spec.example_inputs(1), spec.example_inputs(spec.parity_batch)]
    if spec.has_keras:
        from models import portrules

        keras_model = spec.build_keras()
        names = [t.name.split(":")[0] for t in keras_model.inputs]
        if names != [t.name for t in inputs]:
            raise SpecError(
                f"{spec.path}: build_keras() takes inputs {names} but forward takes {[t.name for t in inputs]}: "
                "name the keras.Input()s like forward's arguments, in the same order"
            )
        try:
            portrules.port(torch_model, keras_model, spec.keras_port_hints)
        except portrules.UnsupportedLayerError as exc:
            raise UnsupportedOpError(str(exc)) from None
        except (ValueError, KeyError) as exc:
            raise ExportError(f"{spec.path}: the weight port into build_keras() failed: {exc}") from None
        tfexport.write(name, keras_model, tfexport.keras_call(keras_model), inputs, outputs, version_dir, warmup)
        return "keras-port"
    converted = run_onnx2tf(spec, torch_model, inputs, outputs, staging, root)
    import tensorflow as tf

    loaded = tf.saved_model.load(str(converted))
    tfexport.write(name, loaded, tfexport.onnx2tf_call(loaded, inputs), inputs, outputs, version_dir, warmup)
    return "onnx2tf"


def run_onnx2tf(
    spec: ModelSpecFile, torch_model: Any, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
    staging: Path, root: Path,
) -> Path:  # fmt: skip
    """torch -> ONNX -> SavedModel (TF 2.19) in .venv-convert, created by `make convert-venv` when missing."""
    import torch

    python = REPO / CONVERT_VENV / "bin" / "python"
    if not (REPO / CONVERT_VENV / ".installed").exists():
        console.print(f"{spec.path.name} has no build_keras(): creating {CONVERT_VENV} for onnx2tf (about two minutes)")
        made = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "convert-venv"], check=False)
        if made.returncode or not python.exists():
            raise ExportError("`make convert-venv` failed: the ONNX converter is unavailable (see its output above)")
    work = staging / "convert"
    work.mkdir()
    torch.save(torch_model.state_dict(), work / "weights.pt")
    np.savez(work / "inputs.npz", **spec.example_inputs(2))  # type: ignore[arg-type]
    dynamic = ",".join(f"{n}:{d}" for n, dims in spec.dynamic_dims.items() for d in dims if d != 0)
    run = subprocess.run(
        [
            str(python), str(REPO / "models" / "onnx_convert.py"), "--spec", str(spec.path),
            "--weights", str(work / "weights.pt"), "--inputs", str(work / "inputs.npz"),
            "--outputs", ",".join(t.name for t in outputs), "--dynamic", dynamic, "--out", str(work / "tf"),
        ],
        capture_output=True, text=True, check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    unsupported = [line for line in run.stdout.splitlines() if line.startswith("UNSUPPORTED ")]
    if unsupported:
        line = unsupported[-1]
        fields = dict(re.findall(r"(\w+)=(\S+)", line.split(" (", 1)[0]))
        reason = line.split(" (", 1)[1].rstrip(")") if " (" in line else ""
        node = f" (ONNX node {fields['node']})" if "node" in fields else ""
        raise UnsupportedOpError(
            f"unsupported op: {fields.get('op', '?')} in layer {fields.get('layer', '?')!r}{node} cannot be converted "
            f"at the {fields.get('stage', '?')} step{': ' + reason if reason else ''}. Rewrite that layer with "
            "supported ops, or define build_keras() in the spec so the TF side is a weight port "
            "(README: Bring your own model)"
        )
    if run.returncode:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-15:])
        raise ExportError(f"the ONNX converter failed (exit {run.returncode}):\n{tail}")
    return work / "tf"
