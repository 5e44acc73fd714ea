"""Real TorchServe, started natively with an empty model store: token auth on, private key file, no token leaks.

Needs only the venv and Java, not the exported models, so it always runs.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from serving.torchserve.launch import key_file
from supervisor import Ports, Stack
from supervisor.__main__ import main
from supervisor.readiness import http
from supervisor.services import SERVICES
from supervisor.summary import print_up

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def bare_torchserve() -> Iterator[tuple[Stack, str]]:
    """TorchServe with no models, via the same Stack.up as the real stack; yields it and the `up` output."""
    base = Path(tempfile.mkdtemp(prefix="svt-"))  # short: worker socket paths are capped at 107 bytes
    (base / "art" / "torchserve").mkdir(parents=True)
    out = io.StringIO()
    console = Console(file=out, width=200)
    stack = Stack(
        base / "run",
        base / "art",
        Ports.ephemeral(),
        require_models=False,
        report=lambda line: console.print(line, markup=False),
    )
    try:
        state = stack.up(["torchserve"], timeout=120)
        print_up(console, state, stack.layout, SERVICES)
        yield stack, out.getvalue()
    finally:
        stack.down(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def test_ping_needs_the_inference_token(bare_torchserve: tuple[Stack, str]) -> None:
    stack, _ = bare_torchserve
    ping = stack.layout.url(stack.layout.ports.ts_inference, "/ping")
    assert http(ping).status in (400, 401)  # TorchServe 0.12 answers 400 InvalidKeyException
    assert http(ping, headers={"Authorization": "Bearer wrong"}).status in (400, 401)
    reply = http(ping, headers={"Authorization": f"Bearer {stack.token()}"})
    assert reply.status == 200 and b"Healthy" in reply.body


def test_key_file_is_private_and_in_the_run_dir(bare_torchserve: tuple[Stack, str]) -> None:
    stack, _ = bare_torchserve
    path = key_file(stack.layout)
    assert path.parent == stack.layout.run_dir / "torchserve"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_binds_only_loopback_on_the_chosen_ports(bare_torchserve: tuple[Stack, str]) -> None:
    stack, _ = bare_torchserve
    p = stack.layout.ports
    wanted = {p.ts_inference, p.ts_management, p.ts_metrics, p.ts_grpc_inference, p.ts_grpc_management}
    pid = stack.state().services["torchserve"].process.pid  # type: ignore[union-attr]
    group = [q for q in psutil.process_iter() if _pgid(q.pid) == pid]
    listening = {(c.laddr.ip, c.laddr.port) for q in group for c in _conns(q) if c.status == psutil.CONN_LISTEN}
    assert {port for _, port in listening} == wanted
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}


def test_logs_stay_in_the_run_dir(bare_torchserve: tuple[Stack, str]) -> None:
    stack, _ = bare_torchserve
    ts_logs = stack.layout.run_dir / "torchserve" / "logs"
    assert (ts_logs / "ts_log.log").exists()
    assert stack.layout.log_file("torchserve").stat().st_size > 0


def test_token_is_never_printed_or_logged(bare_torchserve: tuple[Stack, str]) -> None:
    stack, up_output = bare_torchserve
    token = stack.token()
    out = io.StringIO()
    assert main(["status", "--run-dir", str(stack.layout.run_dir)], console=Console(file=out, width=200)) == 0
    assert "healthy" in out.getvalue()
    assert "key_file.json" in up_output  # the curl line reads the key from the file instead
    for text in (up_output, out.getvalue(), (stack.layout.run_dir / "state.json").read_text()):
        assert token not in text
    for log in [stack.layout.log_file("torchserve"), *(stack.layout.run_dir / "torchserve" / "logs").glob("*")]:
        assert token.encode() not in log.read_bytes(), f"token found in {log}"


def test_refreshed_token_replaces_the_old_one(bare_torchserve: tuple[Stack, str]) -> None:
    stack, _ = bare_torchserve
    ping = stack.layout.url(stack.layout.ports.ts_inference, "/ping")
    old = stack.token()
    new = stack.refresh_token()
    assert new != old and stack.token() == new  # re-read from the key file
    assert http(ping, headers={"Authorization": f"Bearer {new}"}).status == 200
    assert http(ping, headers={"Authorization": f"Bearer {old}"}).status in (400, 401)


def test_down_stops_everything_and_removes_the_key_file(workdir: Path) -> None:
    (workdir / "art" / "torchserve").mkdir(parents=True)
    stack = Stack(workdir / "run", workdir / "art", Ports.ephemeral(), require_models=False)
    state = stack.up(["torchserve"], timeout=120)
    pid = state.services["torchserve"].process.pid
    members = [q for q in psutil.process_iter() if _pgid(q.pid) == pid]
    assert any("java" in " ".join(_cmdline(q)) for q in members)  # the frontend runs in our group
    assert stack.down(timeout=15) == {"torchserve": "stopped"}
    assert not [q for q in members if q.is_running() and q.status() != psutil.STATUS_ZOMBIE]
    assert not key_file(stack.layout).exists()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _conns(proc: psutil.Process) -> list[psutil._common.pconn]:
    try:
        return proc.net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
