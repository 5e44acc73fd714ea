"""Where everything lives for one native stack: run directory, artifacts, repo files, host and ports."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from contract.ports import Ports

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Layout:
    """The settings one `up` runs with; every path absolute so children may run in any directory."""

    run_dir: Path
    """Git-ignored directory owned by the supervisor: state.json, logs/, torchserve/."""
    artifacts: Path
    """Exported models: torchserve/*.mar, tfserving/<model>/<version>/, samples/<model>.json."""
    host: str = "127.0.0.1"
    """Address every service binds natively."""
    ports: Ports = field(default_factory=Ports)
    """Every TCP port of the stack."""
    repo_root: Path = REPO_ROOT
    """Checkout holding serving/torchserve/config.properties and serving/tfserving/."""
    python: str = sys.executable
    """Interpreter for children (TorchServe's launcher and workers, the stand-in)."""
    require_models: bool = True
    """Refuse to start a model server with nothing to serve; tests of bare start-up turn it off."""

    def __post_init__(self) -> None:
        for name in ("run_dir", "artifacts", "repo_root"):
            object.__setattr__(self, name, Path(getattr(self, name)).resolve())

    @property
    def client_host(self) -> str:
        """Address clients use: a wildcard bind is reached through loopback."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)

    def url(self, port: int, path: str = "") -> str:
        """`http://<client host>:<port><path>`, IPv6 literals bracketed."""
        host = f"[{self.client_host}]" if ":" in self.client_host else self.client_host
        return f"http://{host}:{port}{path}"

    @property
    def state_file(self) -> Path:
        """The record of what runs: pids, start times, ports, logs."""
        return self.run_dir / "state.json"

    @property
    def logs_dir(self) -> Path:
        """One `<service>.log` per service (its stdout and stderr)."""
        return self.run_dir / "logs"

    def log_file(self, service: str) -> Path:
        """Log of one service."""
        return self.logs_dir / f"{service}.log"

    def service_dir(self, service: str) -> Path:
        """Private working directory of one service (TorchServe's holds its key file)."""
        return self.run_dir / service

    @property
    def registry_root(self) -> Path:
        """Where registered models are read (models/registry.py): artifacts/registry/ and models.d/ beside it."""
        return self.artifacts.parent

    def sample_file(self, model: str) -> Path:
        """One request body `{"instances": [...]}` for `model`, valid on both stacks (a registered model's is
        written into the run directory from its reference inputs: supervisor/registered.py)."""
        exported = self.artifacts / "samples" / f"{model}.json"
        generated = self.run_dir / "samples" / f"{model}.json"
        return generated if not exported.is_file() and generated.is_file() else exported
