"""Fixtures for the load-test harness tests: a stalled HTTP server in its own process, the whole native stack."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import locust_ui
import pytest
from stall_server import serve

from contract.ports import free_ports


@pytest.fixture
def stall_server() -> Iterator[Callable[..., str]]:
    """Start a stalled server (own process, 127.0.0.1) on demand; returns its base URL."""
    ctx = mp.get_context("spawn")
    procs: list[mp.process.BaseProcess] = []

    def start(stall_after: int = 150, stall_s: float = 0.5, lifetime_s: float = 30.0) -> str:
        q = ctx.Queue()
        p = ctx.Process(target=serve, args=(q, stall_after, stall_s, lifetime_s), daemon=True)
        p.start()
        procs.append(p)
        return f"http://127.0.0.1:{q.get(timeout=20)}"

    yield start
    for p in procs:
        p.terminate()
        p.join(timeout=5)


@pytest.fixture(scope="session")
def gateway_stack() -> Iterator[Path]:
    """The whole native stack (TorchServe, the TF Serving stand-in, the gateway) on free ports, once per session,
    in a short private run dir (TorchServe's socket paths are length-capped); yields its state.json."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "artifacts" / "manifest.json").exists():
        pytest.fail("artifacts/manifest.json is missing: run `make export` (make test does it for you)")
    from supervisor import SERVICES, Ports, Stack

    services = [s for s in ("torchserve", "tfserving", "gateway") if s in SERVICES]
    run_dir = Path(tempfile.mkdtemp(prefix="lts-"))
    st = Stack(run_dir / "run", root / "artifacts", Ports.ephemeral())
    try:
        st.up(services, timeout=300)
        yield run_dir / "run" / "state.json"
    finally:
        st.down()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def webui(gateway_stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """The UI (digits targets) on a free port, as `make locust` starts it; yields (base URL, results dir, pid)."""
    tmp = tmp_path_factory.mktemp("webui")
    (port,) = free_ports(1)
    proc = locust_ui.start(
        gateway_stack, tmp / "results", "--models", "digits", "--web-port", str(port), log=tmp / "ui.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        locust_ui.wait_up(base, proc, tmp / "ui.log")
        yield base, tmp / "results", proc.pid
    finally:
        locust_ui.stop(proc)
