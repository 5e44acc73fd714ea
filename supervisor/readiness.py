"""Bounded waits for services to become ready, and the tiny HTTP client the probes use."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from supervisor.errors import ReadinessError
from supervisor.processes import tail

# Loopback only: an http_proxy in the environment must never see our requests (or their tokens).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ProbeResult:
    """One look at a service: ready or not, and a short human reason (never a secret)."""

    ready: bool
    detail: str


Probe = Callable[[], ProbeResult]


@dataclass(frozen=True)
class HttpReply:
    """Status and body of one HTTP exchange (status 0: no connection)."""

    status: int
    body: bytes

    def text(self, limit: int = 200) -> str:
        """The body as one short line, for messages."""
        return " ".join(self.body[:limit].decode("utf-8", "replace").split())


def http(
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> HttpReply:
    """GET (or POST when `data` is given) `url`; HTTP errors come back as replies, network errors as 0."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpReply(response.status, response.read())
    except urllib.error.HTTPError as err:
        return HttpReply(err.code, err.read())
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return HttpReply(0, f"no answer: {reason}".encode())


def closed_ports(host: str, ports: Mapping[str, int], timeout: float = 1.0) -> list[str]:
    """Roles of the `ports` that do not accept a TCP connection on `host` yet."""
    closed = []
    for role, port in ports.items():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError:
            closed.append(f"{role} {port}")
    return closed


@dataclass
class Waiting:
    """A service being waited for: its probe, a liveness check and its log."""

    label: str
    probe: Probe
    alive: Callable[[], bool]
    log: Path
    log_skip: tuple[str, ...] = ()
    """Log lines containing any of these are left out of failure reports (e.g. our own probes' access log)."""
    last: ProbeResult = ProbeResult(False, "not probed yet")


def _failure(w: Waiting, headline: str, log_lines: int) -> str:
    lines = tail(w.log, log_lines, w.log_skip)
    quoted = "\n".join(f"    {line}" for line in lines.splitlines()) or "    (log is empty)"
    return f"{headline}\n  last probe: {w.last.detail}\n  log: {w.log} (last lines below)\n{quoted}"


def wait_all(
    waiting: Sequence[Waiting],
    timeout: float,
    interval: float = 0.5,
    log_lines: int = 20,
    on_ready: Callable[[Waiting], None] | None = None,
) -> None:
    """Probe every service in turn until all are ready; raise ReadinessError on a death or at the deadline."""
    deadline = time.monotonic() + timeout
    pending = list(waiting)
    while pending:
        for w in list(pending):
            if not w.alive():
                raise ReadinessError(_failure(w, f"{w.label} exited during start-up", log_lines))
            try:
                w.last = w.probe()
            except Exception as err:  # a probe bug or odd reply must become a message, not a traceback
                w.last = ProbeResult(False, f"probe failed: {type(err).__name__}: {err}")
            if w.last.ready:
                pending.remove(w)
                if on_ready:
                    on_ready(w)
        if not pending:
            return
        if time.monotonic() >= deadline:
            names = ", ".join(w.label for w in pending)
            raise ReadinessError(
                "\n".join(_failure(w, f"{w.label} not ready after {timeout:.0f} s", log_lines) for w in pending)
                + f"\n(waiting for: {names})"
            )
        time.sleep(interval)
