"""Fixtures for gateway tests (helpers live in gateway_harness.py so e2e tests can import them too)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_harness import FaultBackend


@pytest.fixture
def backends() -> dict[str, FaultBackend]:
    """A fresh pair of fault backends (tfserving answers with an offset of 0.5 so answers differ)."""
    return {"torchserve": FaultBackend("torchserve"), "tfserving": FaultBackend("tfserving", offset=0.5)}
