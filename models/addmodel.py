"""`make add-model SPEC=path/to/spec.py NAME=name` and `make remove-model NAME=name`.

    python -m models.addmodel add --spec SPEC --name NAME
    python -m models.addmodel remove --name NAME

add: imports the spec (models/modelspec.py), writes artifacts/torchserve/<name>.mar (spec, state_dict,
signature.json, loader), makes the TF side (build_keras() + weight port by rules, else torch -> ONNX -> onnx2tf
in .venv-convert), proves parity by loading BOTH artifacts back from disk at batch 1 and at the spec's
parity_batch, writes artifacts/reference/<name>.npz and registers the model (models.d/<name>/model.json).
Everything is built in a staging folder and moved into place at the end, registration last: a failure at
any step leaves nothing half-registered. remove: deletes the registration, then the artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml  # type: ignore[import-untyped]
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from models import mar_loader, modelspec, registry
from models.modelspec import ModelSpecFile, SpecError
from models.registry import Parity, RegisteredModel, RegistryError, TensorSpec

REPO = Path(__file__).resolve().parent.parent
# The serving side's signature-driven handler (branch i13-serve); the zoo's handler until that is merged.
GENERIC_HANDLER = REPO / "serving" / "torchserve" / "generic_handler.py"
HANDLER = GENERIC_HANDLER if GENERIC_HANDLER.exists() else REPO / "serving" / "torchserve" / "handler.py"
ZOO = REPO / "models" / "zoo"
BUILTINS = ("digits", "resnet18", "textclf")
"""Names of the built-in models: a user model may not take them."""
CONVERT_VENV = ".venv-convert"
LAYOUT_NOTE = "inputs and outputs keep the torch layout and dtypes on both stacks"
console = Console(stderr=True)
Step = Callable[[str], None]


class ExportError(Exception):
    """add-model or remove-model cannot go on; the message says why and what to do."""


class CollisionError(ExportError):
    """The name is already taken by a built-in or a registered model."""


class UnsupportedOpError(ExportError):
    """The converter cannot handle an op; the message names the op and the layer."""


class ParityError(ExportError):
    """The two exported artifacts disagree beyond the tolerance; the message gives max |Δ| and the worst input."""


def add_model(
    spec_path: Path, name: str, root: Path = REPO, builtin: bool = False, step: Step | None = None,
    artifacts: Path | None = None, replace: bool = False,
) -> tuple[RegisteredModel, dict[str, Any]]:  # fmt: skip
    """Export, prove and register `spec_path` as `name`; return (registration, facts such as timings).

    Built-ins (make export) register into <artifacts>/registry/; user models into <root>/models.d/.
    `replace`: re-export a registered user model (make export, after its artifacts went missing).
    """
    step = step or (lambda _description: None)
    started = time.perf_counter()
    registry.check_name(name)
    if not builtin:
        if name in BUILTINS:
            raise CollisionError(f"model name {name!r} is a built-in model; choose another NAME")
        existing = registry.load_all(root)
        if name in existing and not replace:
            raise CollisionError(
                f"model name {name!r} is already registered ({existing[name].source}); "
                f"choose another NAME or `make remove-model NAME={name}` first"
            )
    step("loading the spec")
    spec = modelspec.load(spec_path)
    torch_model = spec.build()
    inputs, outputs = spec.signature(torch_model)
    if spec.has_keras:
        from models import portrules

        try:
            portrules.check_supported(torch_model)
        except portrules.UnsupportedLayerError as exc:
            raise UnsupportedOpError(str(exc)) from None
    artifacts = artifacts or root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=artifacts))
    try:
        step("TorchServe archive")
        mar = write_mar(spec, torch_model, name, inputs, outputs, staging)
        step("TF SavedModel (" + ("weight port" if spec.has_keras else "onnx2tf") + ")")
        converted = time.perf_counter()
        version_dir = staging / "tfserving" / name / str(spec.version)
        converter = write_savedmodel(spec, torch_model, name, inputs, outputs, version_dir, staging, root)
        convert_seconds = time.perf_counter() - converted
        step("parity, both artifacts loaded from disk")
        diffs, reference = prove_parity(spec, torch_model, mar, version_dir, outputs)
        (staging / "reference").mkdir()
        np.savez(staging / "reference" / f"{name}.npz", **reference)  # type: ignore[arg-type]
        model = RegisteredModel(
            name=name,
            version=spec.version,
            builtin=builtin,
            spec=str(spec.path),
            description=spec.description,
            inputs=inputs,
            outputs=outputs,
            max_batch=spec.max_batch,
            tolerance=spec.tolerance,
            slo_p99_ms=spec.slo_p99_ms,
            converter=converter,
            layout_note=LAYOUT_NOTE,
            artifacts={"mar": f"artifacts/torchserve/{name}.mar", "savedmodel": f"artifacts/tfserving/{name}"},
            reference=f"artifacts/reference/{name}.npz",
            parity=Parity(max_abs_diff=diffs, batches=(1, spec.parity_batch)),
        )
        registry.write(staging / "model.json", model)
        facts = {
            "convert_seconds": round(convert_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
            "converter": converter,
            "max_abs_diff": diffs,
        }
        (staging / "export.json").write_text(json.dumps(facts, indent=2) + "\n")
        step("registering")
        _commit(staging, _targets(root, artifacts, name, builtin))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model, facts


def _targets(root: Path, artifacts: Path, name: str, builtin: bool) -> list[tuple[str, Path]]:
    """(staged relative path, final path) in commit order: artifacts first, the registration last."""
    if builtin:
        facts, registration = (
            artifacts / "registry" / "export" / f"{name}.json",
            artifacts / "registry" / f"{name}.json",
        )
    else:
        facts, registration = root / registry.USER_DIR / name / "export.json", registry.user_path(root, name)
    return [
        (f"torchserve/{name}.mar", artifacts / "torchserve" / f"{name}.mar"),
        (f"tfserving/{name}", artifacts / "tfserving" / name),
        (f"reference/{name}.npz", artifacts / "reference" / f"{name}.npz"),
        ("export.json", facts),
        ("model.json", registration),
    ]


def _commit(staging: Path, targets: list[tuple[str, Path]]) -> None:
    """Move the staged files into place; on any failure put back what was there before."""
    done: list[tuple[Path, Path | None]] = []  # (final path, where its previous content waits, if any)
    created: list[Path] = []  # folders made here, removed again on failure (models.d/<name>/)
    try:
        for relative, final in targets:
            missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
            final.parent.mkdir(parents=True, exist_ok=True)
            created.extend(missing)
            previous = None
            if final.exists():
                previous = staging / "previous" / relative
                previous.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(final), str(previous))
            done.append((final, previous))
            shutil.move(str(staging / relative), str(final))
    except BaseException:
        for final, previous in reversed(done):
            _remove(final)
            if previous is not None:
                shutil.move(str(previous), str(final))
        for folder in created:  # deepest first: each was appended before its parents
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_model(name: str, root: Path = REPO) -> list[Path]:
    """Undo add-model for a user model: the registration first (readers stop seeing it), then its artifacts."""
    registry.check_name(name)
    path = registry.user_path(root, name)
    if name in BUILTINS or registry.builtin_path(root, name).exists():
        raise ExportError(f"{name!r} is a built-in model: remove-model only removes models added with add-model")
    if not path.exists():
        known = sorted(p.parent.name for p in (root / registry.USER_DIR).glob("*/model.json"))
        raise ExportError(f"no user model {name!r} is registered; user models: {', '.join(known) or 'none'}")
    removed = []
    for _relative, final in reversed(_targets(root, root / "artifacts", name, builtin=False)):
        if final.exists():
            _remove(final)
            removed.append(final)
    shutil.rmtree(path.parent, ignore_errors=True)
    return removed


def write_mar(
    spec: ModelSpecFile, torch_model: Any, name: str, inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...], staging: Path,
) -> Path:  # fmt: skip
    """<staging>/torchserve/<name>.mar: spec.py, weights.pt, signature.json, twinserve_model.py, batching config."""
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
        console.print(f"{spec.path.name} has no build_keras(): creating {CONVERT_VENV} for onnx2tf (about a minute)")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="export, prove and register a spec")
    add.add_argument("--spec", type=Path, required=True)
    add.add_argument("--name", required=True)
    remove = sub.add_parser("remove", help="unregister a user model and delete its artifacts")
    remove.add_argument("--name", required=True)
    parser.add_argument("--root", type=Path, default=REPO, help="repository root holding artifacts/ and models.d/")
    args = parser.parse_args(argv)
    try:
        if args.command == "remove":
            for path in remove_model(args.name, args.root):
                console.print(f"removed {path}")
            console.print(f"[green]removed[/] {args.name}")
            return 0
        columns = (TextColumn("{task.description:<44}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"{args.name}: starting", total=5)

            def step(description: str) -> None:
                bar.update(task, description=f"{args.name}: {description}", advance=1)

            model, facts = add_model(args.spec, args.name, args.root, step=step)
            bar.update(task, completed=5, description=f"{args.name}: done")
    except (ExportError, SpecError, RegistryError) as exc:
        console.print(f"[red]{type(exc).__name__}[/]: {exc}")
        console.print("nothing was registered" if args.command == "add" else "nothing was removed")
        return 1
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in facts["max_abs_diff"].items())
    console.print(
        f"[green]registered[/] {model.name} v{model.version} ({facts['converter']}, TF side in "
        f"{facts['convert_seconds']} s, total {facts['total_seconds']} s); parity max |Δ|: {diffs}"
    )
    console.print(f"  {registry.user_path(args.root, model.name)}; serve it with `make up`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
