"""The check that a stack's ports are free before anything starts, naming who holds a busy one.

The ports themselves are the contract's (`contract.ports.Ports`).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

from supervisor.errors import PortBusyError


@dataclass(frozen=True)
class PortHolder:
    """A process found listening on (or bound to) a port."""

    pid: int | None
    cmdline: str

    def describe(self) -> str:
        """Human description, e.g. `pid 1234 (python -m http.server 9999)`."""
        if self.pid is None:
            return "a process this user cannot see (try as its owner or root: ss -ltnp)"
        return f"pid {self.pid} ({self.cmdline or 'command line not readable'})"


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
