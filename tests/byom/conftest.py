"""BYOM fixtures: the session's stack serving `pairs` and `mixed` (byom_support.py says what they are)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from byom_support import REPO, SPECS, Byom, add_model, link_zoo

from models import registry


@pytest.fixture(scope="session")
def byom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Byom]:
    """Add both specs under a fresh root, start every service on ephemeral ports, stop them at the end."""
    artifacts = REPO / "artifacts"
    if not (artifacts / "manifest.json").exists():
        pytest.fail("artifacts/manifest.json is missing: run `make export` (make test does it for you)")
    from contract.ports import Ports
    from supervisor.stack import Stack

    root = tmp_path_factory.mktemp("byom")
    for name, spec in SPECS.items():
        add_model(root, spec, name)
    link_zoo(artifacts, root)
    models = registry.load_all(root)
    references = {}
    for name, model in models.items():
        with np.load(root / model.reference) as data:
            references[name] = {k: data[k] for k in data.files}
    run_dir, ports = root / "run", Ports.ephemeral()
    stack = Stack(run_dir, root / "artifacts", ports)
    try:
        stack.up(timeout=300)
        yield Byom(root, run_dir, ports, stack, models, references)
    finally:
        stack.down()
