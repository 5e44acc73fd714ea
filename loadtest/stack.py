"""Which stack is up and where: `run/state.json` (native, `make up`), docker compose's service names (inside the
compose network) or `run/compose/state.json` (compose seen from the host: `make up STACK=compose` writes it).

The load generator never imports the supervisor (its container image has neither torch nor TensorFlow);
it reads the supervisor's state file as plain JSON, as documented in docs/contracts.md.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from contract import tskeys
from contract.ports import CONTRACT
from contract.state import load as read_state
from loadtest.targets import FRAMEWORKS, PATHS, PROTOCOLS, Target

CONTRACT_PORTS = CONTRACT.as_dict()
"""The contract ports (`contract.ports`) by name, as the containers publish them."""
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
    """'native' (run/state.json) or 'compose' (containers: service hostnames, or published ports on the host)."""
    hosts: dict[str, str]
    """Service name -> host the load generator connects to."""
    ports: dict[str, int]
    """Supervisor port name -> port."""
    services: frozenset[str]
    """Services that run: a subset of torchserve, tfserving, gateway."""
    tf_side: str
    """'standin' (natively) or 'real' (TF Serving's own binary, compose)."""
    run_dir: Path
    """Where TorchServe's key file lives (`contract.tskeys.key_file_in`)."""
    state_file: Path | None = None
    notes: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    """Service name -> the pid at the root of its process tree (native only): what its cost is read from."""
    project: str | None = None
    """The compose project whose containers serve (compose seen from the host): the engine reports their cost."""
    behind_gateway: frozenset[str] = frozenset()
    """Frameworks reached only through the gateway: their own names do not resolve here (on Kubernetes with KServe,
    the model servers are InferenceServices in namespaces of their own), so they have gateway targets only."""

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
                        routed = self.has_gateway and (fw in self.services or fw in self.behind_gateway)
                        if not (routed if path == "gateway" else fw in self.services):
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
    """The native stack recorded by `python -m supervisor up` (raises when nothing runs)."""
    state = read_state(state_file)
    if state is None:
        raise FileNotFoundError(f"{state_file} does not exist: start the stack with `make up` first")
    ready = state.ready_services()
    if not ready:
        raise RuntimeError(f"{state_file} records no ready service: run `make up`")
    host = _client_host(state.host)
    return StackInfo(
        source="native",
        hosts=dict.fromkeys(("torchserve", "tfserving", "gateway"), host),
        ports=state.ports.as_dict(),
        services=frozenset(ready),
        tf_side="standin" if state.tf_side in ("standin", None) else "real",
        run_dir=Path(state.run_dir),
        state_file=state_file,
        pids={name: svc.process.pid for name, svc in ready.items()},
    )


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


STANDIN_MARKER = "twinserve_tfserving_standin"
"""A metric only the TF Serving stand-in exports (serving/tfserving/standin/metrics.py)."""
COMPOSE_STATE = Path("run/compose/state.json")


def probe_tf_side(metrics_url: str, timeout: float = 5.0) -> str | None:
    """'standin' when the TF side's metrics carry the stand-in's marker, 'real' when they answer without it,
    None when they do not answer: the TF side says what it is, whatever a state file claims."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout) as reply:
            text = reply.read().decode("utf-8", "replace")
    except OSError:
        return None
    return "standin" if STANDIN_MARKER in text else "real"


def from_compose(run_dir: Path = Path("run")) -> StackInfo:
    """docker compose, inside its network: service hostnames and contract ports; the TF side as it says."""
    services = frozenset(s for s, host in COMPOSE_HOSTS.items() if _resolves(host))
    if not services:
        raise RuntimeError("no compose service name resolves: run inside the compose network")
    tf_side = probe_tf_side(
        f"http://{COMPOSE_HOSTS['tfserving']}:{CONTRACT_PORTS['tf_rest']}/monitoring/prometheus/metrics"
    )
    return StackInfo(
        source="compose",
        hosts=dict(COMPOSE_HOSTS),
        ports=dict(CONTRACT_PORTS),
        services=services,
        tf_side=tf_side or "real",
        run_dir=run_dir,
        behind_gateway=frozenset(FRAMEWORKS) - services if "gateway" in services else frozenset(),
    )


def refresh_compose_key(run_dir: Path, project: str = "twinserve") -> bool:
    """Copy TorchServe's current key file out of its container to `contract.tskeys.key_file_in(run_dir)` (the keys
    rotate in the container; direct TorchServe targets read this copy). False when no engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    done = subprocess.run(
        [docker, "compose", "-p", project, "exec", "-T", "torchserve", "cat", tskeys.FILE_NAME],
        check=False,
        capture_output=True,
        timeout=60,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return False
    key = tskeys.key_file_in(run_dir)
    key.parent.mkdir(parents=True, exist_ok=True)
    partial = key.with_suffix(".partial")
    partial.write_bytes(done.stdout)
    partial.chmod(0o600)
    partial.replace(key)
    return True


def from_compose_state(state_file: Path = COMPOSE_STATE) -> StackInfo:
    """docker compose seen from the host (`make up STACK=compose`): published contract ports on the bind address;
    the TF side as its metrics say (the state file's claim is checked, never trusted alone)."""
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} does not exist: start the containers with `make up STACK=compose`")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    host = _client_host(str(state.get("host", "127.0.0.1")))
    run_dir = Path(state.get("run_dir", state_file.parent))
    said = probe_tf_side(f"http://{host}:{CONTRACT_PORTS['tf_rest']}/monitoring/prometheus/metrics")
    claimed = state.get("tf_side", "real")
    notes = []
    if said is not None and said != claimed:
        notes.append(f"{state_file} says the TF side is {claimed!r}, its metrics say {said!r}: using {said!r}")
    refreshed = refresh_compose_key(run_dir, str(state.get("project", "twinserve")))
    if not refreshed:
        notes.append("TorchServe's key could not be copied from its container: using the copy made by make up")
    return StackInfo(
        source="compose",
        hosts=dict.fromkeys(("torchserve", "tfserving", "gateway"), host),
        ports=dict(CONTRACT_PORTS),
        services=frozenset(state.get("services", {})),
        tf_side=said or claimed,
        run_dir=run_dir,
        state_file=state_file,
        notes=notes,
        project=str(state.get("project", "twinserve")),
    )


def discover(kind: str, state_file: Path, compose_state: Path = COMPOSE_STATE) -> StackInfo:
    """`kind` 'native' reads `state_file`; 'compose' uses service names inside the compose network, else the host's
    `compose_state`; 'auto' tries the native state file first, then compose."""
    if kind == "native" or (kind == "auto" and state_file.is_file()):
        return from_state(state_file)
    if _resolves("torchserve"):
        return from_compose(state_file.parent)
    if kind == "compose" or compose_state.is_file():
        return from_compose_state(compose_state)
    return from_state(state_file)
