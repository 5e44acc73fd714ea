"""The processes a gateway benchmark starts for itself: the gateway, the no-op upstream and Envoy, each in its own
session on free loopback ports, stopped as a group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from contract import gateway_env
from contract.ports import free_ports

REPO = Path(__file__).resolve().parents[2]

QUIET_GATEWAY = gateway_env.to_env(
    {"server": {"host": "127.0.0.1", "workers": 1}, "telemetry": {"log_level": "WARNING"}}
)
"""One worker on loopback, logging only warnings: the gateway as every benchmark here runs it."""


def start_process(
    argv: list[str], env: dict[str, str], ready_url: str, timeout: float = 60, cwd: Path = REPO
) -> subprocess.Popen[bytes]:
    """Start a helper process in its own session and wait until `ready_url` answers 200."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"{ready_url} not ready after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the helper's group, SIGKILL it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def free_port() -> int:
    """One free loopback port."""
    return free_ports(1)[0]


def start_noop(port: int) -> subprocess.Popen[bytes]:
    """The no-op upstream (loadtest.gatewaybench.noop) on `port`."""
    argv = [sys.executable, "-m", "loadtest.gatewaybench.noop", "--port", str(port)]
    return start_process(argv, {}, f"http://127.0.0.1:{port}/ping")


def start_gateway(env: dict[str, str], cwd: Path = REPO) -> tuple[subprocess.Popen[bytes], str, int]:
    """`python -m gateway` with `env` over `QUIET_GATEWAY`, on free ports whatever `env` says; (process, REST url,
    gRPC port)."""
    rest, grpc_port = free_ports(2)
    full = {**QUIET_GATEWAY, **env, **gateway_env.to_env({"server": {"port": rest, "grpc_port": grpc_port}})}
    url = f"http://127.0.0.1:{rest}"
    return start_process([sys.executable, "-m", "gateway"], full, url + "/v2/health/ready", cwd=cwd), url, grpc_port


def noop_gateway_env(upstream_url: str) -> dict[str, str]:
    """A gateway whose only backend is the no-op upstream, spoken to as TorchServe over REST."""
    return gateway_env.to_env(
        {
            "backends": {"torchserve": {"protocol": "rest", "rest_url": upstream_url}, "tfserving": {"enabled": False}},
            "routes": {"models": {"resnet18": {"backend": "torchserve"}}},
            "limits": {"health_interval_s": 3600},
        }
    )
