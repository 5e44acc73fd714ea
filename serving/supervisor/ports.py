"""Every port the native stack binds, and the check that they are free before anything starts."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import psutil

from serving.supervisor.errors import PortBusyError


@dataclass(frozen=True)
class Ports:
    """TCP ports of every service; the defaults are the ones in docs/contracts.md."""

    ts_inference: int = 8080
    """TorchServe REST inference API (also /ping)."""
    ts_management: int = 8081
    """TorchServe management API (model API off; the token API lives here)."""
    ts_metrics: int = 8082
    """TorchServe Prometheus metrics."""
    ts_grpc_inference: int = 7070
    """TorchServe gRPC inference API."""
    ts_grpc_management: int = 7071
    """TorchServe gRPC management API."""
    tf_grpc: int = 8500
    """TF Serving (or the stand-in) gRPC API."""
    tf_rest: int = 8501
    """TF Serving (or the stand-in) REST API and /monitoring/prometheus/metrics."""
    gateway_rest: int = 8000
    """Gateway REST API and /metrics."""
    gateway_grpc: int = 8001
    """Gateway gRPC API."""

    def __post_init__(self) -> None:
        for name, port in self.as_dict().items():
            if not 0 < port < 65536:
                raise ValueError(f"port {name}={port} is outside 1..65535")

    def as_dict(self) -> dict[str, int]:
        """Field name -> port, in declaration order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Ports:
        """Build from a mapping such as state.json's; unknown names are an error, missing ones default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown port name(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{name: int(port) for name, port in values.items()})

    @classmethod
    def ephemeral(cls, host: str = "127.0.0.1") -> Ports:
        """Distinct ports the kernel reports free right now (for tests running beside a dev stack)."""
        names = [f.name for f in fields(cls)]
        return cls(**dict(zip(names, free_ports(len(names), host), strict=True)))


@dataclass(frozen=True)
class PortHolder:
    """A process found listening on (or bound to) a port."""

    pid: int | None
    cmdline: str

    def describe(self) -> str:
        """Human description, e.g. `pid 1234 (python -m http.server 8080)`."""
        if self.pid is None:
            return "a process this user cannot see (try as its owner or root: ss -ltnp)"
        return f"pid {self.pid} ({self.cmdline or 'command line not readable'})"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that are free at the time of the call (held together so they differ)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind `host:port` now (with SO_REUSEADDR, as servers do)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so TIME_WAIT leftovers of an earlier run must not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_holder(port: int) -> PortHolder | None:
    """The process bound to local TCP `port` (listeners first), or None if none is visible."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return PortHolder(pid=None, cmdline="")
    matches = [c for c in conns if c.laddr and c.laddr.port == port]
    if not matches:
        return None
    # A listener is the real holder; other sockets on the port are connections to or from it.
    matches.sort(key=lambda c: c.status != psutil.CONN_LISTEN)
    pid = matches[0].pid
    if pid is None:
        return PortHolder(pid=None, cmdline="")
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        cmdline = ""
    return PortHolder(pid=pid, cmdline=cmdline)


def check_ports_free(wanted: Mapping[str, Mapping[str, int]], host: str) -> None:
    """Raise PortBusyError naming every busy port, its owner service and holder; `wanted`: label -> ports."""
    problems = []
    busy: dict[str, list[str]] = {}  # holder description -> ports it holds, so one holder is named once
    seen: dict[int, str] = {}
    for label, ports in wanted.items():
        for name, port in ports.items():
            where = f"{label} {name}"
            if port in seen:
                problems.append(f"port {port} is wanted twice: by {seen[port]} and by {where}")
                continue
            seen[port] = where
            if not port_is_free(host, port):
                holder = find_holder(port)
                held_by = holder.describe() if holder else "a process that has just let it go (retry)"
                busy.setdefault(held_by, []).append(f"port {port} ({where})")
    problems += [f"{', '.join(ports)} on {host} busy: held by {held_by}" for held_by, ports in busy.items()]
    if problems:
        raise PortBusyError("cannot start: " + "; ".join(problems))
