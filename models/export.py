"""`make export`: every built-in model is a spec file (models/zoo/<m>.py) exported through `make add-model`'s path.

    python -m models.export [--models digits,resnet18,textclf] [--out artifacts]

Each built-in goes through models/addmodel.py (builtin=True): artifacts/torchserve/<m>.mar for the generic
handler (spec.py, weights.pt, signature.json), artifacts/tfserving/<m>/<version>/ by the weight port into the
spec's build_keras(), parity of both artifacts loaded from disk, artifacts/reference/<m>.npz and the registration
artifacts/registry/<m>.json (schema twinserve.model/1). digits and resnet18 (models.specs, the list the
deployments and load tests know) also get artifacts/samples/<m>.{npz,json} and an entry in artifacts/manifest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from models import addmodel, mar_loader, modelspec, port, registry
from models.manifest import read_manifest, sha256_file, sha256_tree, write_manifest
from models.registry import RegisteredModel, TensorSpec
from models.specs import SPECS

REPO = Path(__file__).resolve().parent.parent
MODEL_CONFIGS = REPO / "serving" / "torchserve" / "model-config"
ZOO_SPECS = {name: REPO / "models" / "zoo" / f"{name}.py" for name in ("digits", "resnet18", "textclf")}
"""Every built-in, a spec file exported by add-model's own code (builtin=True)."""
console = Console(stderr=True)


def write_samples(name: str, inputs: np.ndarray, model: torch.nn.Module, labels: Any, out: Path) -> None:
    """Load-test payloads with the PyTorch model's outputs (artifacts/samples/<name>.npz), one curl-able JSON body."""
    target = out / "samples"
    target.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        logits, probabilities = (t.numpy() for t in model(torch.from_numpy(inputs)))
    arrays = {"inputs": inputs.astype(np.float32), "logits": logits, "probabilities": probabilities}
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    np.savez(target / f"{name}.npz", **arrays)
    (target / f"{name}.json").write_text(json.dumps({"instances": [inputs[0].tolist()]}))


def export_spec_builtin(
    name: str, out: Path, bar: Progress, spec: modelspec.ModelSpecFile | None = None
) -> tuple[RegisteredModel, dict[str, Any]]:
    """A built-in spec file through add-model's code: .mar for the generic handler, TF side, parity, registration."""
    task = bar.add_task(f"{name}: loading the spec", total=5)

    def step(description: str) -> None:
        bar.update(task, description=f"{name}: {description}", advance=1)

    config = MODEL_CONFIGS / f"{name}.yaml"  # the zoo's batching settings, which deploy/ and loadtest/ read too
    model, facts = addmodel.add_model(
        ZOO_SPECS[name], name, REPO, builtin=True, step=step, artifacts=out, spec=spec,
        model_config=config if config.is_file() else None,
    )  # fmt: skip
    bar.update(task, completed=5, description=f"{name}: done")
    return model, facts


def export_model(name: str, out: Path, bar: Progress) -> dict[str, Any]:
    """digits or resnet18 through add-model's path, then its samples; return its manifest entry."""
    started = time.perf_counter()
    spec = modelspec.load(ZOO_SPECS[name])
    model, _ = export_spec_builtin(name, out, bar, spec)
    torch_model = spec.build()  # the spec caches its build(): the very weights add-model exported
    inputs, labels = spec.module.samples()
    write_samples(name, inputs, torch_model, labels, out)
    mar = out / "torchserve" / f"{name}.mar"
    with zipfile.ZipFile(mar) as archive:
        weights_file_sha = hashlib.sha256(archive.read(mar_loader.WEIGHTS)).hexdigest()
    version_dir = out / "tfserving" / name / str(model.version)
    [tensor] = model.inputs

    def described(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "dtype": t.numpy_dtype, "shape": list(t.shape)}

    return {
        "version": model.version,
        "description": model.description,
        "input": described(tensor),
        "outputs": [described(t) for t in model.outputs],
        "weights_sha256": port.canonical_digest(torch_model),
        "weights_file_sha256": weights_file_sha,
        "torchserve": {"path": str(mar.relative_to(out)), "sha256": sha256_file(mar)},
        "tfserving": {"path": str(version_dir.relative_to(out)), "files": sha256_tree(version_dir)},
        "export_seconds": round(time.perf_counter() - started, 1),
        "spec": model.spec,
        "max_abs_diff": model.parity.max_abs_diff,
        **spec.module.facts(torch_model),
    }


def reexport_user_models(root: Path, out: Path) -> None:
    """Registered user models (models.d/) whose artifacts are missing, e.g. after `make clean`, from their specs."""
    for model in registry.load_all(root).values():
        if model.builtin or all((root / p).exists() for p in (*model.artifacts.values(), model.reference)):
            continue
        if not Path(model.spec).is_file():
            console.print(f"[yellow]{model.name}: artifacts missing and spec {model.spec} is gone[/]: remove-model it")
            continue
        console.print(f"{model.name}: artifacts missing, exporting again from {model.spec}")
        addmodel.add_model(Path(model.spec), model.name, root, artifacts=out, replace=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ZOO_SPECS), help="comma-separated model names")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts", help="artifacts folder")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(ZOO_SPECS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted(ZOO_SPECS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    entries = read_manifest(manifest_path)["models"] if manifest_path.exists() else {}
    columns = (TextColumn("{task.description:<34}"), BarColumn(), TimeElapsedColumn())
    done: list[str] = []
    with Progress(*columns, console=console) as bar:
        for name in names:
            started = time.perf_counter()
            if name in SPECS:
                entries[name] = export_model(name, args.out, bar)
            else:
                export_spec_builtin(name, args.out, bar)
            diffs = registry.read(args.out / "registry" / f"{name}.json").parity.max_abs_diff
            accuracy = entries.get(name, {}).get("heldout_accuracy")
            done.append(
                f"[green]exported[/] {name} in {time.perf_counter() - started:.1f} s, parity max |Δ| "
                + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items())
                + (f", held-out accuracy {accuracy:.4f}" if accuracy is not None else "")
            )
    write_manifest(manifest_path, {k: entries[k] for k in sorted(entries)})
    if args.out.resolve() == (REPO / "artifacts").resolve():
        reexport_user_models(REPO, args.out)
    for line in done:
        console.print(line)
    console.print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
