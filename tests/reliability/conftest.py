"""Reliability fixtures: one stack of our own per session (these tests SIGKILL and restart its servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.stack import Stack


@pytest.fixture(scope="session")
def chaos_stack(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Real TorchServe + the stand-in on ephemeral ports; not the shared native_stack, since we kill them."""
    from reliability import procs

    stack = procs.start_stacks(tmp_path_factory.mktemp("chaos-run"), artifacts)
    try:
        yield stack
    finally:
        stack.down()
