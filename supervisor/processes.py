"""Start a service as its own process group, recognise it later by pid + start time, and stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from contract.state import ProcessRecord

# psutil derives create_time from boot time and clock ticks; the same process reads back within this.
_CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Launch:
    """How to start one service: argv, working directory, extra environment."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    """Added to the base environment of the child."""
    drop_env_prefixes: tuple[str, ...] = ()
    """Variables removed from the base environment (e.g. TS_*, which would override our config)."""


def child_env(base: Mapping[str, str], launch: Launch) -> dict[str, str]:
    """The environment of a child: `base` minus dropped prefixes, plus the launch's additions."""
    env = {k: v for k, v in base.items() if not k.startswith(launch.drop_env_prefixes)}
    env.update(launch.env)
    return env


def spawn(launch: Launch, log_path: Path, base_env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start `launch` in a new session (its own process group), stdout+stderr to `log_path`, umask 077."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=child_env(base_env, launch),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session: one killpg reaches every descendant, and a Ctrl-C in our terminal does not.
            start_new_session=True,
            # Files the service writes (TorchServe's key file, logs) stay private to this user.
            umask=0o077,
        )
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        # Died at once; a record that matches nothing is harmless, and readiness reports the log.
        create_time = 0.0
    return proc, ProcessRecord(proc.pid, create_time, list(launch.argv), str(launch.cwd))


def _leader(record: ProcessRecord) -> psutil.Process | None:
    """The recorded process if it is still the one we started (same start time, still a group leader)."""
    try:
        proc = psutil.Process(record.pid)
        same = abs(proc.create_time() - record.create_time) <= _CREATE_TIME_TOLERANCE_S
        return proc if same and os.getpgid(record.pid) == record.pid else None
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie; reaps it when it is our own child."""
    try:
        proc.wait(timeout=0)  # reaps our children; raises TimeoutExpired while running
        return False
    except psutil.TimeoutExpired:
        pass
    except psutil.NoSuchProcess:
        return False
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(pgid: int) -> list[psutil.Process]:
    """Live members of process group `pgid`."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def owned_group(record: ProcessRecord) -> list[psutil.Process]:
    """Live processes of the group we started; empty if it is gone or the pid now belongs to someone else.

    A pid that leads a live group or session is never reused by the kernel, so when the leader has exited
    but members of its group remain, those members are still ours.
    """
    try:
        psutil.Process(record.pid)
        exists = True
    except psutil.NoSuchProcess:
        exists = False
    if exists and _leader(record) is None:
        return []  # pid reused by an unrelated process (different start time or not a group leader)
    return _group(record.pid)


def is_running(record: ProcessRecord) -> bool:
    """Whether the recorded process itself (not a pid reuser) is alive."""
    leader = _leader(record)
    return leader is not None and _alive(leader)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_gone(pgid: int, timeout: float) -> list[psutil.Process]:
    """Poll until group `pgid` has no live members or `timeout` passes; returns the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        left = _group(pgid)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def stop(record: ProcessRecord, timeout: float = 15.0, kill_timeout: float = 5.0) -> str:
    """Stop the group we started: SIGTERM, wait up to `timeout`, then SIGKILL; returns what happened.

    Outcomes: "stopped", "killed" (needed SIGKILL), "not running", "survived SIGKILL".
    """
    if not owned_group(record):
        return "not running"
    _signal_group(record.pid, signal.SIGTERM)
    if not _wait_gone(record.pid, timeout):
        return "stopped"
    _signal_group(record.pid, signal.SIGKILL)
    return "killed" if not _wait_gone(record.pid, kill_timeout) else "survived SIGKILL"


def tail(path: Path, lines: int = 20, skip: tuple[str, ...] = (), max_bytes: int = 256 * 1024) -> str:
    """Last `lines` lines of a log file (empty if missing), decoded leniently, without lines containing any
    of the `skip` substrings."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            data = f.read()
    except FileNotFoundError:
        return ""
    kept = [line for line in data.decode("utf-8", "replace").splitlines() if not any(m in line for m in skip)]
    return "\n".join(kept[-lines:])


def reap(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Collect exit statuses of children we started in this process (after stop), so none stays a zombie."""
    for proc in procs:
        proc.poll()
