"""Which stack is up and where: `run/state.json` (native, `make up`) or docker compose's service names.

The load generator never imports the supervisor (its container image has neither torch nor TensorFlow);
it reads the supervisor's state file as plain JSON, as documented in docs/contracts.md.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.targets import FRAMEWORKS, PATHS, PROTOCOLS, Target

# Contract ports (docs/contracts.md), by the supervisor's names (serving/supervisor/ports.py).
CONTRACT_PORTS = {
    "ts_inference": 8080,
    "ts_metrics": 8082,
    "ts_grpc_inference": 7070,
    "tf_grpc": 8500,
    "tf_rest": 8501,
    "gateway_rest": 8000,
    "gateway_grpc": 8001,
}
_ENDPOINT = {
    ("torchserve", "rest"): ("torchserve", "ts_inference"),
    ("torchserve", "grpc"): ("torchserve", "ts_grpc_inference"),
    ("tfserving", "rest"): ("tfserving", "tf_rest"),
    ("tfserving", "grpc"): ("tfserving", "tf_grpc"),
    ("gateway", "rest"): ("gateway", "gateway_rest"),
    ("gateway", "grpc"): ("gateway", "gateway_grpc"),
}
COMPOSE_HOSTS = {"torchserve": "torchserve", "tfserving": "tfserving", "gateway": "gateway"}


@dataclass(frozen=True)
class StackInfo:
    """Where each service of a running stack answers, and what the TF side really is."""

    source: str
    """'native' (run/state.json) or 'compose' (service hostnames on the compose network)."""
    hosts: dict[str, str]
    """Service name -> host the load generator connects to."""
    ports: dict[str, int]
    """Supervisor port name -> port."""
    services: frozenset[str]
    """Services that run: a subset of torchserve, tfserving, gateway."""
    tf_side: str
    """'standin' (natively) or 'real' (TF Serving's own binary, compose)."""
    run_dir: Path
    """Where TorchServe's key file lives: `<run_dir>/torchserve/key_file.json`."""
    state_file: Path | None = None
    notes: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    """Service name -> the pid at the root of its process tree (native only): what its cost is read from."""

    @property
    def has_gateway(self) -> bool:
        """Whether the gateway runs (gateway targets exist only then)."""
        return "gateway" in self.services

    def address(self, service: str, port_name: str) -> tuple[str, int]:
        """(host, port) of one service's port."""
        return self.hosts[service], self.ports[port_name]

    def url(self, service: str, port_name: str, path: str = "") -> str:
        """`http://host:port<path>`."""
        host, port = self.address(service, port_name)
        return f"http://{host}:{port}{path}"

    def target(self, framework: str, protocol: str, path: str, model: str) -> Target:
        """A Target with this stack's host and port (the gateway's for gateway targets)."""
        service, port_name = _ENDPOINT[("gateway" if path == "gateway" else framework, protocol)]
        host, port = self.address(service, port_name)
        return Target(framework, protocol, path, model, host, port)

    def targets(self, models: list[str], patterns: list[str] | None = None) -> list[Target]:
        """Every target this stack can serve (gateway targets only with a gateway), filtered by patterns
        like 'torchserve-*-direct' (default: all)."""
        out = []
        for model in models:
            for fw in FRAMEWORKS:
                for proto in PROTOCOLS:
                    for path in PATHS:
                        if fw not in self.services or (path == "gateway" and not self.has_gateway):
                            continue
                        if patterns and not any(_matches(p, fw, proto, path, model) for p in patterns):
                            continue
                        out.append(self.target(fw, proto, path, model))
        return out

    def as_dict(self) -> dict[str, object]:
        """For summary.json's run.environment."""
        return {
            "source": self.source,
            "state_file": str(self.state_file) if self.state_file else None,
            "services": sorted(self.services),
            "tf_side": self.tf_side,
            "hosts": self.hosts,
            "ports": self.ports,
        }


def _matches(pattern: str, fw: str, proto: str, path: str, model: str) -> bool:
    name, _, pat_model = pattern.partition(":")
    parts = ["*", "*", "*"] if name in ("all", "") else name.split("-")
    return (
        len(parts) == 3
        and all(p in ("*", v) for p, v in zip(parts, (fw, proto, path), strict=True))
        and pat_model in ("", "*", model)
    )


def _client_host(bind: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)


def from_state(state_file: Path) -> StackInfo:
    """The native stack recorded by `python -m serving.supervisor up` (raises when nothing runs)."""
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} does not exist: start the stack with `make up` first")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    services = {name for name, svc in state.get("services", {}).items() if svc.get("ready", True)}
    if not services:
        raise RuntimeError(f"{state_file} records no ready service: run `make up`")
    host = _client_host(str(state.get("host", "127.0.0.1")))
    tf_kind = state.get("tf_side") or state.get("services", {}).get("tfserving", {}).get("kind")
    return StackInfo(
        source="native",
        hosts=dict.fromkeys(("torchserve", "tfserving", "gateway"), host),
        ports={**CONTRACT_PORTS, **{k: int(v) for k, v in state.get("ports", {}).items()}},
        services=frozenset(services),
        tf_side="standin" if tf_kind in ("standin", None) else "real",
        run_dir=Path(state.get("run_dir", state_file.parent)),
        state_file=state_file,
        pids={n: int(svc["pid"]) for n, svc in state.get("services", {}).items() if n in services and "pid" in svc},
    )


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


def from_compose(run_dir: Path = Path("run")) -> StackInfo:
    """docker compose: service hostnames and contract ports; the TF side is the real server there."""
    services = frozenset(s for s, host in COMPOSE_HOSTS.items() if _resolves(host))
    if not services:
        raise RuntimeError("no compose service name resolves: run inside the compose network")
    return StackInfo(
        source="compose",
        hosts=dict(COMPOSE_HOSTS),
        ports=dict(CONTRACT_PORTS),
        services=services,
        tf_side="real",
        run_dir=run_dir,
    )


def discover(kind: str, state_file: Path) -> StackInfo:
    """`kind` 'native' reads `state_file`; 'compose' uses service names; 'auto' tries the state file first."""
    if kind == "compose" or (kind == "auto" and not state_file.is_file() and _resolves("torchserve")):
        return from_compose(state_file.parent)
    return from_state(state_file)
