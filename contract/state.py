"""`<run-dir>/state.json`: the supervisor's record of what it started, and the one reader of it.

The supervisor writes it (`supervisor.state.save`); `down` trusts nothing else, and the load generator, the
report and the UI read where each service answers from it. Plain data and JSON only: the load generator's
container has neither the supervisor nor psutil.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.ports import Ports

VERSION = 1
FILE_NAME = "state.json"


class StateFileError(ValueError):
    """state.json exists but cannot be read as this version's record."""


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies a process the supervisor started: pid plus start time (pids get reused, start times not)."""

    pid: int
    create_time: float
    argv: list[str]
    cwd: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for state.json."""
        return {"pid": self.pid, "create_time": self.create_time, "argv": self.argv, "cwd": self.cwd}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessRecord:
        """Inverse of to_dict."""
        return cls(int(data["pid"]), float(data["create_time"]), list(data["argv"]), str(data["cwd"]))


@dataclass
class ServiceState:
    """One started service: its process record, ports by role, log, and whether it passed readiness."""

    name: str
    label: str
    kind: str
    process: ProcessRecord
    ports: dict[str, int]
    log: str
    started_at: str
    ready: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; the process record is flattened (pid, create_time, argv, cwd)."""
        return {
            "label": self.label,
            "kind": self.kind,
            **self.process.to_dict(),
            "ports": self.ports,
            "log": self.log,
            "started_at": self.started_at,
            "ready": self.ready,
        }

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ServiceState:
        """Inverse of to_dict."""
        return cls(
            name=name,
            label=str(data["label"]),
            kind=str(data.get("kind", "native")),
            process=ProcessRecord.from_dict(data),
            ports={k: int(v) for k, v in data["ports"].items()},
            log=str(data["log"]),
            started_at=str(data["started_at"]),
            ready=bool(data.get("ready", False)),
        )


@dataclass
class StackState:
    """Everything in state.json."""

    run_dir: str
    artifacts: str
    host: str
    ports: Ports
    services: dict[str, ServiceState] = field(default_factory=dict)

    @property
    def tf_side(self) -> str | None:
        """Which TF side runs ("standin" natively), or None when none does."""
        tf = self.services.get("tfserving")
        return tf.kind if tf else None

    def ready_services(self) -> dict[str, ServiceState]:
        """The services that passed readiness."""
        return {name: s for name, s in self.services.items() if s.ready}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": VERSION,
            "run_dir": self.run_dir,
            "artifacts": self.artifacts,
            "host": self.host,
            "tf_side": self.tf_side,
            "ports": self.ports.as_dict(),
            "services": {name: s.to_dict() for name, s in self.services.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackState:
        """Inverse of to_dict; raises StateFileError for a file from another version."""
        if data.get("version") != VERSION:
            raise StateFileError(f"state.json has version {data.get('version')!r}, expected {VERSION}")
        return cls(
            run_dir=str(data["run_dir"]),
            artifacts=str(data["artifacts"]),
            host=str(data["host"]),
            ports=Ports.from_dict(data["ports"]),
            services={n: ServiceState.from_dict(n, s) for n, s in data["services"].items()},
        )


def load(path: Path) -> StackState | None:
    """The state in `path`, or None if there is none; a corrupt or foreign file raises StateFileError."""
    try:
        return StackState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except StateFileError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise StateFileError(f"{path} is unreadable ({err}); stop leftovers by hand, then delete it") from err
