"""`make k8s-artifacts`: lay out artifacts/ as the model storage the Kubernetes manifests read.

  torchserve/<model>.mar                          plain TorchServe Deployment (its model store)
  kserve/torchserve/<model>/config/config.properties, model-store/<model>.mar   one kserve-torchserve storageUri
  tfserving/<model>/<version>/...                 plain TF Serving (/models) and kserve-tensorflow-serving
  tfserving/<model>/batching_parameters.txt, monitoring.config   read by KServe's TF Serving from /mnt/models
  samples/<model>.json                            KServe v1 request bodies (one call by hand)
  samples/<model>.npz, manifest.json              the Locust UI's classes and answer checks (loadtest/ui/launch.py)

Copy the result into the `twinserve-models` claim (or any storage KServe reads and change the storageUris).
Files are hard-linked where the file system allows, so the layout costs no space next to artifacts/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from deploy.k8s.kserve import STORAGE_TF, STORAGE_TS, torchserve_properties
from deploy.k8s.sources import Sources
from models.manifest import read_manifest, sha256_file

PARTS = ("torchserve", "kserve", STORAGE_TF, "samples")


def _place(source: Path, target: Path) -> None:
    """Hard-link `source` at `target`, or copy it when linking is not possible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _place_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file():
            _place(path, target / path.relative_to(source))


def lay_out(artifacts: Path, out: Path, progress: Callable[[str], None] = print) -> list[Path]:
    """Build the layout from an exported artifacts/ folder; returns the files written. Raises on a bad export."""
    src = Sources()
    manifest = read_manifest(artifacts / "manifest.json")
    exported = manifest["models"]
    missing = [m.name for m in src.models if m.name not in exported]
    if missing:
        raise ValueError(f"{artifacts}/manifest.json lacks model(s) {', '.join(missing)}: run `make export`")
    for part in PARTS:
        shutil.rmtree(out / part, ignore_errors=True)  # only our own sub-folders, never `out` itself
    (out / "manifest.json").unlink(missing_ok=True)
    progress(f"laying out model storage for Kubernetes in {out}/ from {artifacts}/")
    for model in src.models:
        entry = exported[model.name]
        mar = artifacts / entry["torchserve"]["path"]
        if sha256_file(mar) != entry["torchserve"]["sha256"]:
            raise ValueError(f"{mar}: sha256 differs from manifest.json; run `make export`")
        _place(mar, out / "torchserve" / mar.name)
        ts_root = out / STORAGE_TS / model.name
        _place(mar, ts_root / "model-store" / mar.name)
        (ts_root / "config").mkdir(parents=True, exist_ok=True)
        (ts_root / "config" / "config.properties").write_text(torchserve_properties(src, model))
        saved_model = artifacts / entry["tfserving"]["path"]
        tf_root = out / STORAGE_TF / model.name
        _place_tree(saved_model, tf_root / saved_model.name)
        (tf_root / "batching_parameters.txt").write_text(src.tf_batching_text)
        (tf_root / "monitoring.config").write_text((src.repo / "serving/tfserving/monitoring.config").read_text())
        for sample in (artifacts / "samples" / f"{model.name}{ext}" for ext in (".json", ".npz")):
            if sample.is_file():
                _place(sample, out / "samples" / sample.name)
        progress(f"  {model.name}: torchserve .mar + KServe config.properties, tfserving version {saved_model.name}")
    _place(artifacts / "manifest.json", out / "manifest.json")
    files = sorted([out / "manifest.json", *(p for part in PARTS for p in (out / part).rglob("*") if p.is_file())])
    progress(f"{len(files)} files; upload {out}/ to the claim twinserve-models (see docs/kubernetes.md)")
    return files
