"""A busy port stops `up` before anything starts, with a message naming the port and who holds it."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from supervisor import PortBusyError, Ports, Stack
from supervisor.__main__ import main
from supervisor.ports import check_ports_free, find_holder, port_is_free


@pytest.fixture
def listener() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_busy_port_names_port_and_holder(listener: int) -> None:
    assert not port_is_free("127.0.0.1", listener)
    holder = find_holder(listener)
    assert holder is not None and holder.pid == os.getpid()
    with pytest.raises(PortBusyError) as err:
        check_ports_free({"TorchServe": {"inference": listener}}, "127.0.0.1")
    message = str(err.value)
    assert f"port {listener} (TorchServe inference)" in message
    assert f"pid {os.getpid()}" in message
    # The holder's command line, so the user can tell which program to stop.
    assert " ".join(psutil.Process().cmdline()[:2]) in message


def test_free_port_passes_and_duplicate_port_is_reported() -> None:
    free = Ports.ephemeral()
    check_ports_free({"A": {"x": free.ts_inference}}, "127.0.0.1")
    with pytest.raises(PortBusyError, match="wanted twice"):
        check_ports_free({"A": {"x": free.ts_inference}, "B": {"y": free.ts_inference}}, "127.0.0.1")


def test_ephemeral_ports_are_distinct() -> None:
    values = list(Ports.ephemeral().as_dict().values())
    assert len(set(values)) == len(values)


def test_up_refuses_before_starting_anything(sleeper_stack: Callable[..., Stack], listener: int, ports: Ports) -> None:
    """The sleeper binds gateway_rest; with that port busy `up` must not spawn, write state or logs."""
    stack = sleeper_stack(ports_=Ports(**{**ports.as_dict(), "gateway_rest": listener}))
    with pytest.raises(PortBusyError, match=f"port {listener} \\(Sleeper http\\)"):
        stack.up(["sleeper"])
    assert not stack.layout.state_file.exists()
    assert not stack.layout.log_file("sleeper").exists()


def test_cli_exits_nonzero_naming_the_port(workdir: Path, listener: int) -> None:
    out = io.StringIO()
    code = main(
        [
            "up",
            "--services",
            "torchserve",
            "--run-dir",
            str(workdir / "run"),
            "--artifacts",
            str(workdir),
            "--port",
            f"ts_inference={listener}",
        ],
        console=Console(file=out, width=200),
    )
    assert code == 1
    assert f"port {listener} (TorchServe inference)" in out.getvalue()
    assert f"pid {os.getpid()}" in out.getvalue()
