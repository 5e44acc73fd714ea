"""Supervisor fixtures: short private run directories, free ports, and a harmless `sleeper` service that goes
through exactly the code path real services use (registry entry -> spawn -> readiness -> state -> down)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor import Layout, Ports, Service, Stack
from supervisor.processes import Launch
from supervisor.readiness import ProbeResult, http

SLEEPER = Path(__file__).with_name("sleeper_service.py")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temporary directory (TorchServe's worker sockets must fit Linux's 107-byte path limit)."""
    path = Path(tempfile.mkdtemp(prefix="svt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ports() -> Ports:
    """Free ports, so tests never collide with a dev stack on the default ones."""
    return Ports.ephemeral()


def sleeper_registry(*flags: str) -> dict[str, Service]:
    """A registry with one `sleeper` service (bound to the gateway_rest port) run with `flags`."""

    def prepare(layout: Layout) -> Launch:
        argv = [sys.executable, str(SLEEPER), "--port", str(layout.ports.gateway_rest), *flags]
        return Launch(argv=argv, cwd=layout.run_dir)

    def ready(layout: Layout) -> ProbeResult:
        reply = http(layout.url(layout.ports.gateway_rest, "/"), timeout=2.0)
        return ProbeResult(reply.status == 200, f"GET / answered {reply.status}")

    return {
        "sleeper": Service(
            name="sleeper",
            label="Sleeper",
            ports=lambda layout: {"http": layout.ports.gateway_rest},
            prepare=prepare,
            ready=ready,
        )
    }


@pytest.fixture
def sleeper_stack(workdir: Path, ports: Ports) -> Iterator[Callable[..., Stack]]:
    """Factory: a Stack in `workdir/run` whose only service is the sleeper run with the given flags
    (`ports_` overrides the free ports).

    Every stack made is brought down at teardown, so a failing test leaves no process behind.
    """
    made: list[Stack] = []

    def make(*flags: str, ports_: Ports | None = None) -> Stack:
        stack = Stack(workdir / "run", workdir / "artifacts", ports_ or ports, registry=sleeper_registry(*flags))
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.down(timeout=2.0)
