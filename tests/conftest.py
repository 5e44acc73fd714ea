"""Shared fixtures: where the artifacts are, and the guarantee they exist (make test builds them)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The exported artifacts folder; `make test` runs `make export` first, so missing means broken."""
    path = REPO / "artifacts"
    if not (path / "manifest.json").exists():
        pytest.fail("artifacts/manifest.json is missing: run `make export` (make test does it for you)")
    return path
