"""artifacts/manifest.json: what was exported, from which software, with which hashes."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
PACKAGES = ("torch", "tensorflow", "keras", "numpy", "torchserve", "torch-model-archiver", "scikit-learn")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, keyed by its path relative to `root`."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def versions() -> dict[str, str]:
    """Versions of the software that produced the artifacts."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def write_manifest(path: Path, models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write the manifest and return it."""
    manifest = {"schema_version": SCHEMA_VERSION, "versions": versions(), "models": models}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest, checking its schema version."""
    manifest = json.loads(path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {manifest.get('schema_version')} != {SCHEMA_VERSION}")
    return manifest
