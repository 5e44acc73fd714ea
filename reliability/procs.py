"""Processes for chaos runs: the real stacks via the supervisor's Stack, and `python -m gateway` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from contract import gateway_env
from contract.ports import Ports, free_ports
from supervisor.errors import PortBusyError
from supervisor.processes import spawn
from supervisor.stack import Stack

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"


def start_stacks(run_dir: Path, artifacts: Path = ARTIFACTS, timeout: float = 240) -> Stack:
    """Real TorchServe and the TF Serving stand-in on ephemeral ports, in `run_dir`."""
    stack = Stack(run_dir, artifacts, Ports.ephemeral())
    try:
        stack.up(["torchserve", "tfserving"], timeout=timeout)
    except BaseException:
        stack.down()
        raise
    return stack


def kill(stack: Stack, service: str, timeout: float = 10.0) -> float:
    """SIGKILL the whole process group of `service` (a crash, no shutdown); returns the perf_counter time."""
    state = stack.state()
    assert state is not None and service in state.services, f"{service} is not running"
    pid = state.services[service].process.pid
    t = time.perf_counter()
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service} (pid {pid}) survived SIGKILL")
        time.sleep(0.05)
    return t


def restart(stack: Stack, service: str, timeout: float = 120.0) -> float:
    """Start `service` again on the same ports (the Stack forgets the dead record); returns when ready.

    The dead server's sockets linger (FIN_WAIT2) until its clients close their ends, so a port may stay
    unbindable for a moment: retry until `timeout`, as an operator or orchestrator would.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            stack.up([service], timeout=max(1.0, deadline - time.monotonic()))
            return time.perf_counter()
        except PortBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class GatewayProcess:
    """`python -m gateway` on free loopback ports, configured for `stack` plus `env` overrides."""

    stack: Stack
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    grpc_port: int = 0

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        """Start and wait for /v2/health/ready."""
        from gateway import launch as gw

        rest, grpc_port = free_ports(2)
        ours = {"server": {"host": "127.0.0.1", "port": rest, "grpc_port": grpc_port}}
        ours["telemetry"] = {"log_level": "INFO"}
        launch = gw.prepare(self.stack.layout, env={**gateway_env.to_env(ours), **self.env})
        self.log_path = self.log_path or self.stack.layout.run_dir / "logs" / f"gateway-{rest}.log"
        self.proc, _ = spawn(launch, self.log_path, os.environ)
        self.url, self.grpc_port = f"http://127.0.0.1:{rest}", grpc_port
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway not ready after {timeout} s: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def rss_bytes(self) -> int:
        """Resident memory of the gateway process and its children."""
        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        return int(p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True)))

    def metric(self, prefix: str) -> dict[str, float]:
        """Samples of /metrics whose line starts with `prefix`: full sample name -> value."""
        text = requests.get(self.url + "/metrics", timeout=2).text
        out = {}
        for line in text.splitlines():
            if line.startswith(prefix):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful drain), SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
