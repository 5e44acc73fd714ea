"""up/down through the real code path with a harmless service: state.json, group kill, identity checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from supervisor import ReadinessError, Stack
from supervisor.processes import Launch, ProcessRecord, child_env, is_running
from supervisor.state import ServiceState, StackState, save


def _wait_for_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process nobody should kill: its own session, like a supervised service would have."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_up_records_state_and_down_kills_the_whole_group(sleeper_stack: Callable[..., Stack], workdir: Path) -> None:
    pidfile = workdir / "grandchild.pid"
    stack = sleeper_stack("--grandchild-pidfile", str(pidfile))
    state = stack.up(["sleeper"], timeout=30)
    entry = state.services["sleeper"]
    recorded = json.loads(stack.layout.state_file.read_text())["services"]["sleeper"]
    assert recorded["pid"] == entry.process.pid
    assert recorded["create_time"] == pytest.approx(psutil.Process(entry.process.pid).create_time())
    assert recorded["ports"] == {"http": stack.layout.ports.gateway_rest}
    assert recorded["log"] == str(stack.layout.log_file("sleeper")) and recorded["ready"] is True
    grandchild = int(_wait_for_file(pidfile))
    assert psutil.pid_exists(grandchild)

    assert stack.down(timeout=5) == {"sleeper": "stopped"}
    assert _gone(entry.process.pid) and _gone(grandchild), "down must reach every process of the group"
    assert not stack.layout.state_file.exists()
    assert stack.down() == {}  # idempotent


def test_sigterm_ignored_means_sigkill_after_the_bounded_wait(sleeper_stack: Callable[..., Stack]) -> None:
    stack = sleeper_stack("--ignore-term")
    pid = stack.up(["sleeper"], timeout=30).services["sleeper"].process.pid
    began = time.monotonic()
    assert stack.down(timeout=1.0) == {"sleeper": "killed"}
    # bounded: waiting for the TERM-ignoring sleeper would never end; 30 s is any loaded machine's margin over 1 s
    assert time.monotonic() - began < 30
    assert _gone(pid)


def test_stale_state_with_reused_pid_is_not_killed(
    sleeper_stack: Callable[..., Stack], bystander: subprocess.Popen[bytes]
) -> None:
    """state.json names the bystander's pid, but with another start time: that pid was reused, hands off."""
    stack = sleeper_stack()
    real = psutil.Process(bystander.pid).create_time()
    record = ProcessRecord(bystander.pid, real - 1000.0, ["old", "service"], "/")
    stack.layout.run_dir.mkdir(parents=True)
    entry = ServiceState("sleeper", "Sleeper", "native", record, {"http": 1}, "x.log", "then", True)
    save(
        stack.layout.state_file,
        StackState(str(stack.layout.run_dir), "a", "127.0.0.1", stack.layout.ports, {"sleeper": entry}),
    )
    assert stack.down(timeout=1.0) == {"sleeper": "not running"}
    assert bystander.poll() is None, "a process whose pid merely matches must survive"
    assert not stack.layout.state_file.exists()


def test_matching_pid_that_is_not_our_group_leader_is_not_killed(
    sleeper_stack: Callable[..., Stack], workdir: Path
) -> None:
    """Same pid and start time but not a session/group leader: not something `spawn` started."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # shares our group
    try:
        stack = sleeper_stack()
        record = ProcessRecord(proc.pid, psutil.Process(proc.pid).create_time(), ["x"], "/")
        assert not is_running(record)
        entry = ServiceState("sleeper", "Sleeper", "native", record, {}, "x.log", "then", True)
        save(
            stack.layout.state_file, StackState(str(workdir), "a", "127.0.0.1", stack.layout.ports, {"sleeper": entry})
        )
        assert stack.down(timeout=1.0) == {"sleeper": "not running"}
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_process_that_dies_at_start_is_reported_with_its_log(sleeper_stack: Callable[..., Stack]) -> None:
    stack = sleeper_stack("--fail")
    with pytest.raises(ReadinessError) as err:
        stack.up(["sleeper"], timeout=30)
    message = str(err.value)
    assert "Sleeper exited during start-up" in message
    assert str(stack.layout.log_file("sleeper")) in message
    assert "boom, bad configuration on line 3" in message  # the log's last lines are quoted
    assert not stack.layout.state_file.exists()


def test_not_ready_in_time_is_stopped_and_reported(sleeper_stack: Callable[..., Stack]) -> None:
    stack = sleeper_stack("--never-ready")
    began = time.monotonic()
    with pytest.raises(ReadinessError) as err:
        stack.up(["sleeper"], timeout=2)
    # it gave up (the sleeper never gets ready); 60 s is a loaded machine's margin over the 2 s readiness timeout
    assert time.monotonic() - began < 60
    message = str(err.value)
    assert "Sleeper not ready after 2 s" in message and "GET / answered 503" in message
    assert "sleeper: serving on" in message
    assert not stack.layout.state_file.exists()
    assert stack.status() == []


def test_up_twice_keeps_the_running_service(sleeper_stack: Callable[..., Stack]) -> None:
    stack = sleeper_stack()
    first = stack.up(["sleeper"], timeout=30).services["sleeper"].process.pid
    again = stack.up(["sleeper"], timeout=30).services["sleeper"].process.pid
    assert first == again
    [status] = stack.status()
    assert status.running and status.health is not None and status.health.ready


def test_child_env_drops_prefixes_and_adds_settings() -> None:
    launch = Launch(["x"], Path("/"), env={"LOG_LOCATION": "/run/logs"}, drop_env_prefixes=("TS_",))
    env = child_env({"PATH": "/bin", "TS_CONFIG_FILE": "/etc/evil", "TS_INFERENCE_ADDRESS": "x"}, launch)
    assert env == {"PATH": "/bin", "LOG_LOCATION": "/run/logs"}
    assert os.environ.get("LOG_LOCATION") != "/run/logs"  # the parent's environment is untouched
