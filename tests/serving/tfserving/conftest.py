"""Fixtures for the TF Serving stand-in tests: the tiny models, and stand-in processes started once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from standin_support import BATCHING_PARAMETERS, WARMUP_RECORDS, StandIn, build_model, launch


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder in place of the container's /models: tiny/1 (with warm-up requests), tiny/2, tiny/notes."""
    root = tmp_path_factory.mktemp("models")
    build_model(root / "tiny" / "1", version=1, warmup=WARMUP_RECORDS)
    build_model(root / "tiny" / "2", version=2, warmup=0)
    (root / "tiny" / "notes").mkdir()  # not a number: the version scan must skip it
    return root


@pytest.fixture(scope="session")
def standin(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """A stand-in without batching, shared by the REST, gRPC and metrics tests."""
    server = launch(tmp_path_factory.mktemp("standin"), model_root)
    yield server
    code = server.stop()
    assert code == 0, f"stand-in exited with {code} after SIGTERM:\n{server.log()}"


@pytest.fixture(scope="module")
def batching_standin(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """A stand-in with --enable_batching and BATCHING_PARAMETERS."""
    workdir = tmp_path_factory.mktemp("batching")
    (workdir / "batching.txt").write_text(BATCHING_PARAMETERS)
    flags = ["--enable_batching", f"--batching_parameters_file={workdir / 'batching.txt'}"]
    server = launch(workdir, model_root, *flags)
    yield server
    server.stop()
