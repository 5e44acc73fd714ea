"""`make export`: build each model's weights once, port them to Keras, write both stacks' artifacts.

    python -m models.export [--models digits,resnet18] [--out artifacts]

Writes artifacts/torchserve/<m>.mar, artifacts/tfserving/<m>/<version>/, artifacts/samples/<m>.{npz,json}
and artifacts/manifest.json for digits and resnet18, and every built-in's registration (schema twinserve.model/1)
into artifacts/registry/<m>.json with its reference outputs in artifacts/reference/<m>.npz. The built-ins that
are spec files (models/zoo/, today textclf) go through exactly the path of `make add-model` (models/addmodel.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from models import addmodel, keras_nets, port, registry, savedmodel, specartifacts, train
from models.manifest import read_manifest, sha256_file, sha256_tree, write_manifest
from models.registry import Parity, RegisteredModel, TensorSpec, Tolerance
from models.specs import SPECS, ModelSpec

REPO = Path(__file__).resolve().parent.parent
HANDLER = REPO / "serving" / "torchserve" / "handler.py"
MODEL_CONFIGS = REPO / "serving" / "torchserve" / "model-config"
RESNET_SAMPLES = 16  # payloads for load tests; parity draws its own 256 seeded images
ZOO_SPECS = {"textclf": REPO / "models" / "zoo" / "textclf.py"}
"""Built-ins written as spec files: exported by add-model's own code (builtin=True)."""
SLO_P99_MS = {"digits": 100.0, "resnet18": 1500.0}  # loadtest/run.py's default SLOs
PARITY_BATCH = 8
console = Console(stderr=True)


def build_weights(name: str, progress: train.Progress) -> tuple[torch.nn.Module, dict[str, Any], np.ndarray]:
    """The PyTorch model with its final weights, facts for the manifest, and sample inputs."""
    if name == "digits":
        model, accuracy = train.train_digits(progress=progress)
        data = train.digits_data()
        return model, {"heldout_accuracy": accuracy, "heldout_samples": len(data.y_test)}, data.x_test
    model = train.seed_resnet18(progress=progress)
    return model, {"weights": "seeded random, BN calibrated"}, train.seeded_images(RESNET_SAMPLES, 7).numpy()


def write_mar(spec: ModelSpec, model: torch.nn.Module, out: Path, staging: Path) -> Path:
    """Archive model source, state_dict and metadata into <out>/torchserve/<name>.mar."""
    torch.save(model.state_dict(), staging / "weights.pt")
    shutil.copy(REPO / "models" / "torch_nets.py", staging / "torch_nets.py")
    meta = {
        "name": spec.name,
        "num_classes": spec.num_classes,
        "input_name": spec.input_name,
        "input_shape": list(spec.input_shape),
        "output_names": list(spec.output_names),
    }
    (staging / "model_meta.json").write_text(json.dumps(meta, indent=2))
    target = out / "torchserve"
    target.mkdir(parents=True, exist_ok=True)
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    subprocess.run(
        [
            str(archiver), "--model-name", spec.name, "--version", f"{spec.version}.0",
            "--model-file", str(staging / "torch_nets.py"),
            "--serialized-file", str(staging / "weights.pt"),
            "--handler", str(HANDLER),
            "--extra-files", str(staging / "model_meta.json"),
            "--config-file", str(MODEL_CONFIGS / f"{spec.name}.yaml"),
            "--export-path", str(target), "--force",
        ],
        check=True,
    )  # fmt: skip
    return target / f"{spec.name}.mar"


def write_samples(spec: ModelSpec, inputs: np.ndarray, model: torch.nn.Module, labels: Any, out: Path) -> None:
    """Sample payloads with the PyTorch model's reference outputs, and one curl-able JSON body."""
    target = out / "samples"
    target.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs)).numpy()
    arrays = {"inputs": inputs.astype(np.float32), "logits": logits,
              "probabilities": torch.softmax(torch.from_numpy(logits), 1).numpy()}  # fmt: skip
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    np.savez(target / f"{spec.name}.npz", **arrays)
    (target / f"{spec.name}.json").write_text(json.dumps({"instances": [inputs[0].tolist()]}))


def export_model(name: str, out: Path, bar: Progress) -> dict[str, Any]:
    """Build, port and export one model; return its manifest entry."""
    spec = SPECS[name]
    task = bar.add_task(f"{name}: weights", total=5)
    started = time.perf_counter()

    def report(description: str, fraction: float) -> None:
        bar.update(task, description=description, completed=fraction)

    model, facts, samples = build_weights(name, report)
    bar.update(task, description=f"{name}: TorchServe archive", completed=1)
    with tempfile.TemporaryDirectory() as staging:
        mar = write_mar(spec, model, out, Path(staging))
        weights_file_sha = sha256_file(Path(staging) / "weights.pt")
    bar.update(task, description=f"{name}: Keras port", completed=2)
    keras_model = keras_nets.build(name, spec.num_classes)
    port.port_weights(name, model, keras_model)
    bar.update(task, description=f"{name}: SavedModel", completed=3)
    version_dir = out / "tfserving" / name / str(spec.version)
    shutil.rmtree(out / "tfserving" / name, ignore_errors=True)
    savedmodel.write_savedmodel(keras_model, spec, version_dir, samples[:8])
    bar.update(task, description=f"{name}: samples", completed=4)
    labels = train.digits_data().y_test if name == "digits" else None
    write_samples(spec, samples, model, labels, out)
    bar.update(task, description=f"{name}: done", completed=5)
    return {
        "version": spec.version,
        "description": spec.description,
        "input": {"name": spec.input_name, "dtype": spec.dtype, "shape": [-1, *spec.input_shape]},
        "outputs": [{"name": n, "dtype": spec.dtype, "shape": [-1, spec.num_classes]} for n in spec.output_names],
        "weights_sha256": port.canonical_digest(model),
        "weights_file_sha256": weights_file_sha,
        "torchserve": {"path": str(mar.relative_to(out)), "sha256": sha256_file(mar)},
        "tfserving": {"path": str(version_dir.relative_to(out)), "files": sha256_tree(version_dir)},
        "export_seconds": round(time.perf_counter() - started, 1),
        "seed": train.SEED,
        **facts,
    }


def register_zoo_model(name: str, entry: dict[str, Any], out: Path) -> RegisteredModel:
    """The registration of digits or resnet18 (exported above in the zoo handler's .mar format), in the schema
    every reader uses, with reference outputs at batch 1 and 8 and max |Δ| of the SavedModel against torch."""
    spec = SPECS[name]
    with np.load(out / "samples" / f"{name}.npz") as samples:
        arrays = {k: samples[k] for k in ("inputs", *spec.output_names)}
    signature = savedmodel.load_signature(out / entry["tfserving"]["path"])
    reference: dict[str, np.ndarray] = {}
    diffs = dict.fromkeys(spec.output_names, 0.0)
    for batch in (1, PARITY_BATCH):
        inputs = arrays["inputs"][:batch]
        tf_out = signature(input=inputs)
        reference[f"b{batch}/in/{spec.input_name}"] = inputs
        for key in spec.output_names:
            reference[f"b{batch}/out/{key}"] = arrays[key][:batch]
            diffs[key] = max(diffs[key], float(np.max(np.abs(tf_out[key].numpy() - arrays[key][:batch]))))
    (out / "reference").mkdir(parents=True, exist_ok=True)
    np.savez(out / "reference" / f"{name}.npz", **reference)  # type: ignore[arg-type]
    model = RegisteredModel(
        name=name,
        version=spec.version,
        builtin=True,
        spec="models/torch_nets.py",  # not yet a spec file: its .mar keeps the zoo handler's format
        description=spec.description,
        inputs=(TensorSpec(spec.input_name, "FP32", (-1, *spec.input_shape)),),
        outputs=tuple(TensorSpec(n, "FP32", (-1, spec.num_classes)) for n in spec.output_names),
        max_batch=32,
        tolerance=Tolerance(atol=1e-4, rtol=1e-3),
        slo_p99_ms=SLO_P99_MS[name],
        converter="keras-port",
        layout_note=addmodel.LAYOUT_NOTE,
        artifacts={"mar": f"artifacts/{entry['torchserve']['path']}", "savedmodel": f"artifacts/tfserving/{name}"},
        reference=f"artifacts/reference/{name}.npz",
        parity=Parity(max_abs_diff=diffs, batches=(1, PARITY_BATCH)),
    )
    registry.write(out / "registry" / f"{name}.json", model)
    return model


def export_spec_builtin(name: str, out: Path, bar: Progress) -> None:
    """A built-in spec file through add-model's code; skipped while TorchServe could not load its .mar."""
    if not specartifacts.GENERIC_HANDLER.exists():
        console.print(
            f"[yellow]{name}: not exported[/]: its .mar needs {specartifacts.GENERIC_HANDLER.relative_to(REPO)} "
            "(issue 13's serving side); the zoo handler cannot load a spec's .mar"
        )
        return
    task = bar.add_task(f"{name}: loading the spec", total=5)

    def step(description: str) -> None:
        bar.update(task, description=f"{name}: {description}", advance=1)

    _, facts = addmodel.add_model(ZOO_SPECS[name], name, REPO, builtin=True, step=step, artifacts=out)
    bar.update(task, completed=5, description=f"{name}: done")
    console.print(f"[green]exported[/] {name} ({facts['converter']}) in {facts['total_seconds']} s")


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
    parser.add_argument("--models", default=",".join([*SPECS, *ZOO_SPECS]), help="comma-separated model names")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts", help="artifacts folder")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(SPECS) - set(ZOO_SPECS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted([*SPECS, *ZOO_SPECS])}")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    entries = read_manifest(manifest_path)["models"] if manifest_path.exists() else {}
    columns = (TextColumn("{task.description:<34}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        for name in (n for n in names if n in SPECS):
            entries[name] = export_model(name, args.out, bar)
            register_zoo_model(name, entries[name], args.out)
        for name in (n for n in names if n in ZOO_SPECS):
            export_spec_builtin(name, args.out, bar)
    write_manifest(manifest_path, {k: entries[k] for k in sorted(entries)})
    if args.out.resolve() == (REPO / "artifacts").resolve():
        reexport_user_models(REPO, args.out)
    for name in (n for n in names if n in SPECS):
        entry = entries[name]
        extra = f", held-out accuracy {entry['heldout_accuracy']:.4f}" if "heldout_accuracy" in entry else ""
        console.print(f"[green]exported[/] {name} in {entry['export_seconds']} s{extra}")
    console.print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
