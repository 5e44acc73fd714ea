"""`Stack`: the Python API behind `python -m supervisor` (and test fixtures): up, down, status, token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from contract.ports import Ports
from supervisor import state as state_file
from supervisor.errors import PreflightError, SupervisorError
from supervisor.layout import REPO_ROOT, Layout
from supervisor.ports import check_ports_free
from supervisor.processes import is_running, reap, spawn, stop
from supervisor.readiness import ProbeResult, Waiting, closed_ports, wait_all
from supervisor.services import DEFAULT_SERVICES, SERVICES, Service, resolve
from supervisor.state import ServiceState, StackState


@dataclass(frozen=True)
class ServiceStatus:
    """What `status` found for one recorded service."""

    name: str
    label: str
    kind: str
    pid: int
    running: bool
    ports: dict[str, int]
    log: str
    health: ProbeResult | None
    """None when not running or not a known service."""


class Stack:
    """The native stack living in one run directory; state.json there is the source of truth."""

    def __init__(
        self,
        run_dir: Path | str,
        artifacts: Path | str,
        ports: Ports | None = None,
        host: str = "127.0.0.1",
        *,
        repo_root: Path = REPO_ROOT,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        require_models: bool = True,
        registry: Mapping[str, Service] = SERVICES,
        report: Callable[[str], None] | None = None,
    ) -> None:
        """`env`: base environment of the children (default: this process's); `report`: progress lines."""
        self.layout = Layout(Path(run_dir), Path(artifacts), host, ports or Ports(), repo_root, python, require_models)
        # The one place the supervisor reads the environment: children inherit it (minus what a service drops).
        self._env = dict(os.environ if env is None else env)
        self._registry = registry
        self._report = report or (lambda line: None)
        self._children: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def state(self) -> StackState | None:
        """The recorded state, or None when nothing was started here."""
        return state_file.load(self.layout.state_file)

    def _current(self) -> StackState:
        """Recorded state minus services no longer running; a fresh one when nothing runs."""
        current = self.state()
        if current is not None:
            for name, svc in list(current.services.items()):
                if not is_running(svc.process):
                    self._report(f"{svc.label}: recorded pid {svc.process.pid} no longer runs; forgetting it")
                    stop(svc.process)  # leftovers of its group, if any
                    del current.services[name]
        if current is None or not current.services:
            return StackState(str(self.layout.run_dir), str(self.layout.artifacts), self.layout.host, self.layout.ports)
        if (current.host, current.ports) != (self.layout.host, self.layout.ports):
            raise PreflightError(
                f"{self.layout.run_dir} already runs {', '.join(current.services)} with other host/ports; "
                "run `down` first or use another --run-dir"
            )
        return current

    def up(
        self,
        services: Iterable[str] = DEFAULT_SERVICES,
        timeout: float = 180.0,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> StackState:
        """Start the named services (skipping ones already running here), wait until all are ready.

        `options`: per service, keyword options for its `prepare` (each Service lists the ones it takes), e.g.
        `{"torchserve": {"model_store": "/tmp/store"}}`. On any failure every service started by this call is
        stopped again and the error re-raised.
        """
        chosen = resolve(services, self._registry)
        options = dict(options or {})
        for name, given in options.items():
            svc = self._registry.get(name)
            if svc is None or svc not in chosen:
                raise ValueError(f"options for {name!r}, which is not among the services started: {services}")
            unknown = sorted(set(given) - set(svc.options))
            if unknown:
                raise ValueError(f"{svc.label} takes no option {', '.join(unknown)}; it takes: {svc.options or 'none'}")
        with state_file.locked(self.layout.run_dir):
            return self._up(chosen, timeout, options)

    def _up(self, chosen: list[Service], timeout: float, options: Mapping[str, Mapping[str, Any]]) -> StackState:
        current = self._current()
        for svc in chosen:
            if svc.name in current.services:
                self._report(f"{svc.label}: already running (pid {current.services[svc.name].process.pid})")
        to_start = [svc for svc in chosen if svc.name not in current.services]
        if not to_start:
            return current
        layout = self.layout
        check_ports_free({svc.label: svc.ports(layout) for svc in to_start}, layout.host)
        launches = {svc.name: svc.prepare(layout, **options.get(svc.name, {})) for svc in to_start}
        started: list[ServiceState] = []
        began = time.monotonic()
        try:
            for svc in to_start:
                log = layout.log_file(svc.name)
                proc, record = spawn(launches[svc.name], log, self._env)
                self._children.append(proc)
                entry = ServiceState(
                    svc.name,
                    svc.label,
                    svc.kind,
                    record,
                    svc.ports(layout),
                    str(log),
                    datetime.now(UTC).isoformat(timespec="seconds"),
                )
                current.services[svc.name] = entry
                started.append(entry)
                # Recorded before the wait, so `down` can clean up even if this process is killed meanwhile.
                state_file.save(layout.state_file, current)
                self._report(f"{svc.label}: started, pid {record.pid}, log {log}")
            waiting = [self._waiting(self._registry[e.name], e) for e in started]
            wait_all(
                waiting,
                timeout,
                on_ready=lambda w: self._report(
                    f"{w.label}: ready after {time.monotonic() - began:.1f} s ({w.last.detail})"
                ),
            )
        except BaseException:
            self._undo(current, started)
            raise
        for entry in started:
            entry.ready = True
        state_file.save(layout.state_file, current)
        return current

    def _waiting(self, svc: Service, entry: ServiceState) -> Waiting:
        def probe() -> ProbeResult:
            # Every declared port must accept connections (TorchServe answers /ping before gRPC listens).
            closed = closed_ports(self.layout.client_host, entry.ports)
            if closed:
                return ProbeResult(False, f"not listening yet on {', '.join(closed)}")
            return svc.ready(self.layout)

        return Waiting(
            label=svc.label,
            probe=probe,
            alive=lambda: is_running(entry.process),
            log=Path(entry.log),
            log_skip=svc.log_skip,
        )

    def _undo(self, current: StackState, started: list[ServiceState]) -> None:
        """Stop what this `up` started and forget it; keep services that ran before."""
        for entry in reversed(started):
            outcome = stop(entry.process)
            self._report(f"{entry.label}: {outcome} (start-up did not complete; log kept at {entry.log})")
            self._cleanup(entry.name, self.layout)
            current.services.pop(entry.name, None)
        reap(self._children)
        if current.services:
            state_file.save(self.layout.state_file, current)
        else:
            state_file.remove(self.layout.state_file)

    def down(self, timeout: float = 15.0) -> dict[str, str]:
        """Stop exactly the recorded processes (identity checked), newest first; idempotent."""
        if self.state() is None:
            return {}
        with state_file.locked(self.layout.run_dir):
            return self._down(timeout)

    def _down(self, timeout: float) -> dict[str, str]:
        current = self.state()
        if current is None:
            return {}
        layout = self._recorded_layout(current)
        outcomes = {}
        for name, entry in reversed(list(current.services.items())):
            outcomes[name] = stop(entry.process, timeout=timeout)
            self._report(f"{entry.label}: {outcomes[name]}")
            if outcomes[name] != "survived SIGKILL":
                self._cleanup(name, layout)
                del current.services[name]
        reap(self._children)
        if current.services:
            state_file.save(self.layout.state_file, current)
            raise SupervisorError(
                f"could not stop {', '.join(current.services)}; state kept in {self.layout.state_file}"
            )
        state_file.remove(self.layout.state_file)
        return outcomes

    def _recorded_layout(self, current: StackState) -> Layout:
        """This stack's layout with artifacts, host and ports as recorded by the `up` that started it."""
        return replace(self.layout, artifacts=Path(current.artifacts), host=current.host, ports=current.ports)

    def _cleanup(self, name: str, layout: Layout) -> None:
        svc = self._registry.get(name)
        if svc and svc.cleanup:
            svc.cleanup(layout)

    def status(self) -> list[ServiceStatus]:
        """Each recorded service: running or not, and (when running) its health probe."""
        current = self.state()
        if current is None:
            return []
        layout = self._recorded_layout(current)
        result = []
        for name, entry in current.services.items():
            running = is_running(entry.process)
            svc = self._registry.get(name)
            health = self._health(svc, layout, entry) if running and svc else None
            result.append(
                ServiceStatus(name, entry.label, entry.kind, entry.process.pid, running, entry.ports, entry.log, health)
            )
        return result

    @staticmethod
    def _health(svc: Service, layout: Layout, entry: ServiceState) -> ProbeResult:
        closed = closed_ports(layout.client_host, entry.ports)
        if closed:
            return ProbeResult(False, f"not listening on {', '.join(closed)}")
        return svc.check_health(layout)

    def token(self, kind: str = "inference") -> str:
        """TorchServe's current `kind` key, read from the key file on every call (keys expire)."""
        from serving.torchserve import launch as torchserve  # the plug-in, loaded as the registry loads it

        return torchserve.read_token(torchserve.key_file(self.layout), kind)

    def refresh_token(self, kind: str = "inference") -> str:
        """Have TorchServe regenerate the `kind` key (token API, API key) and return the new one."""
        from serving.torchserve import launch as torchserve

        return torchserve.refresh_token(self.layout, kind)
