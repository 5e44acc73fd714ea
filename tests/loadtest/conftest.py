"""Fixtures for the load-test harness tests: a stalled HTTP server in its own process, synthetic summaries."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator

import pytest
from stall_server import serve


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
