"""`<run-dir>/state.json`: the supervisor's record of what it started (and the only thing `down` trusts)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.supervisor.errors import SupervisorError
from serving.supervisor.ports import Ports
from serving.supervisor.processes import ProcessRecord

VERSION = 1


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
        """Inverse of to_dict; raises SupervisorError for a file from another version."""
        if data.get("version") != VERSION:
            raise SupervisorError(f"state.json has version {data.get('version')!r}, expected {VERSION}")
        return cls(
            run_dir=str(data["run_dir"]),
            artifacts=str(data["artifacts"]),
            host=str(data["host"]),
            ports=Ports.from_dict(data["ports"]),
            services={n: ServiceState.from_dict(n, s) for n, s in data["services"].items()},
        )


def load(path: Path) -> StackState | None:
    """The state in `path`, or None if there is none; a corrupt file raises SupervisorError."""
    try:
        return StackState.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise SupervisorError(f"{path} is unreadable ({err}); stop leftovers by hand, then delete it") from err


def save(path: Path, state: StackState) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)


def remove(path: Path) -> None:
    """Delete the state file if present."""
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold `<run-dir>/.lock` for the duration, so two `up`/`down` never interleave on one run dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SupervisorError(
                f"another supervisor command is working on {run_dir}; try again when it ends"
            ) from None
        yield
