"""The processes a gateway benchmark starts for itself: the gateway (as the supervisor starts it,
`gateway.launch.prepare`), the no-op upstream and Envoy, each in its own session on free loopback ports, stopped as
a group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from contract import gateway_env
from contract.ports import free_ports
from gateway import launch as gateway_launch
from supervisor.layout import Layout
from supervisor.processes import spawn

REPO = Path(__file__).resolve().parents[2]

QUIET_GATEWAY = gateway_env.to_env(
    {"server": {"host": "127.0.0.1", "workers": 1}, "telemetry": {"log_level": "WARNING"}}
)
"""One worker on loopback, logging only warnings: the gateway as every benchmark here runs it."""


def wait_ready(proc: subprocess.Popen[bytes], ready_url: str, timeout: float = 60, log: Path | None = None) -> None:
    """Wait until `ready_url` answers 200; stop `proc` and say why (with its log's tail) if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.is_file() else ""
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}\n{tail}")
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"{ready_url} not ready after {timeout} s" + (f" (log: {log})" if log else ""))


def start_process(argv: list[str], ready_url: str, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start a helper process in its own session, output discarded, and wait until `ready_url` answers 200."""
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_ready(proc, ready_url, timeout)
    return proc


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
    return start_process(argv, f"http://127.0.0.1:{port}/ping")


def start_gateway(
    layout: Layout, env: Mapping[str, str], source: Path | None = None
) -> tuple[subprocess.Popen[bytes], str, int]:
    """`python -m gateway` as the supervisor starts it for `layout`'s stack (gateway.launch.prepare), with
    `QUIET_GATEWAY` and `env` on top, on free ports whatever `env` says, logging into the stack's logs/; from
    another tree's `gateway` package with `source`. Returns (process, REST url, gRPC port) once it is ready."""
    rest, grpc_port = free_ports(2)
    ours = {**QUIET_GATEWAY, **env, **gateway_env.to_env({"server": {"port": rest, "grpc_port": grpc_port}})}
    launch = gateway_launch.prepare(layout, env=ours)
    if source is not None:
        launch = replace(launch, cwd=source)
    log = layout.run_dir / "logs" / f"gateway-bench-{rest}.log"
    proc, _ = spawn(launch, log, os.environ)
    url = f"http://127.0.0.1:{rest}"
    wait_ready(proc, url + "/v2/health/ready", log=log)
    return proc, url, grpc_port


def noop_gateway_env(upstream_url: str) -> dict[str, str]:
    """A gateway whose only backend is the no-op upstream, spoken to as TorchServe over REST."""
    return gateway_env.to_env(
        {
            "backends": {
                "torchserve": {"protocol": "rest", "rest_url": upstream_url, "key_file": None},
                "tfserving": {"enabled": False},
            },
            "routes": {"models": {"resnet18": {"backend": "torchserve"}}},
            "health": {"interval_s": 3600},
        }
    )
