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
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from models import modelspec, registry
from models.modelspec import SpecError
from models.registry import Parity, RegisteredModel, RegistryError
from models.specartifacts import write_mar, write_savedmodel
from models.specerrors import CollisionError, ExportError, ParityError, UnsupportedOpError
from models.specparity import prove_parity

__all__ = ["CollisionError", "ExportError", "ParityError", "UnsupportedOpError", "add_model", "remove_model"]

REPO = Path(__file__).resolve().parent.parent
BUILTINS = ("digits", "resnet18", "textclf")
"""Names of the built-in models: a user model may not take them."""
LAYOUT_NOTE = "inputs and outputs keep the torch layout and dtypes on both stacks"
console = Console(stderr=True)
Step = Callable[[str], None]


def add_model(
    spec_path: Path, name: str, root: Path = REPO, builtin: bool = False, step: Step | None = None,
    artifacts: Path | None = None, replace: bool = False, spec: modelspec.ModelSpecFile | None = None,
    model_config: Path | None = None,
) -> tuple[RegisteredModel, dict[str, Any]]:  # fmt: skip
    """Export, prove and register `spec_path` as `name`; return (registration, facts such as timings).

    Built-ins (make export) register into <artifacts>/registry/ with the spec path relative to `root`; user
    models into <root>/models.d/. `replace`: re-export a registered user model (make export, after its artifacts
    went missing). `spec`: `spec_path` already loaded (make export reads a zoo model's build() again afterwards).
    `model_config`: the TorchServe model-config yaml to pack instead of the default batching settings.
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
    spec = spec or modelspec.load(spec_path)
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
        mar = write_mar(spec, torch_model, name, inputs, outputs, staging, model_config)
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
            spec=_spec_reference(spec.path, root, builtin),
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


def _spec_reference(path: Path, root: Path, builtin: bool) -> str:
    """A built-in's spec relative to the repository (artifacts then name the tree's file wherever it lies)."""
    if builtin and path.is_relative_to(root.resolve()):
        return str(path.relative_to(root.resolve()))
    return str(path)


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
