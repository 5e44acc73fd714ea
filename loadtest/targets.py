"""The measured targets: {torchserve, tfserving} x {rest, grpc} x {direct, gateway} x model, with addresses.

A target id reads '<framework>-<protocol>-<path>:<model>', e.g. 'tfserving-grpc-gateway:digits'.
Ports follow docs/contracts.md; everything is on loopback unless `host` says otherwise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from contract import tskeys
from contract.ports import CONTRACT

FRAMEWORKS = ("torchserve", "tfserving")
PROTOCOLS = ("rest", "grpc")
PATHS = ("direct", "gateway")
PORTS = {
    ("torchserve", "rest", "direct"): CONTRACT.ts_inference,
    ("torchserve", "grpc", "direct"): CONTRACT.ts_grpc_inference,
    ("tfserving", "rest", "direct"): CONTRACT.tf_rest,
    ("tfserving", "grpc", "direct"): CONTRACT.tf_grpc,
    ("gateway", "rest"): CONTRACT.gateway_rest,
    ("gateway", "grpc"): CONTRACT.gateway_grpc,
}
"""Each target's contract port (`contract.ports`), by (framework, protocol, path) and (gateway, protocol)."""
KEY_FILE = tskeys.key_file_in(Path("run"))


@dataclass(frozen=True)
class Target:
    """One framework, protocol, path and model, and where to reach it."""

    framework: str
    protocol: str
    path: str
    model: str
    host: str = "127.0.0.1"
    port_override: int | None = None
    """Another port than the contract's (e.g. a second stack on loopback)."""

    def __post_init__(self) -> None:
        for value, allowed in ((self.framework, FRAMEWORKS), (self.protocol, PROTOCOLS), (self.path, PATHS)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")

    @property
    def id(self) -> str:
        """'<framework>-<protocol>-<path>:<model>'."""
        return f"{self.framework}-{self.protocol}-{self.path}:{self.model}"

    @property
    def spec(self) -> str:
        """The id, with '@port' (or '@host:port' off loopback) when not the contract's (`parse_target` reads it)."""
        if self.host != "127.0.0.1":
            return f"{self.id}@{self.host}:{self.port}"
        return self.id + (f"@{self.port_override}" if self.port_override else "")

    @property
    def port(self) -> int:
        """The port this target listens on (the gateway's for gateway targets)."""
        if self.port_override:
            return self.port_override
        if self.path == "gateway":
            return PORTS[("gateway", self.protocol)]
        return PORTS[(self.framework, self.protocol, self.path)]

    @property
    def address(self) -> str:
        """'host:port' for gRPC, 'http://host:port' for REST."""
        hp = f"{self.host}:{self.port}"
        return hp if self.protocol == "grpc" else f"http://{hp}"

    def as_dict(self) -> dict[str, str]:
        """The summary.json form (schema `Target`)."""
        return {
            "id": self.id,
            "framework": self.framework,
            "protocol": self.protocol,
            "path": self.path,
            "model": self.model,
        }


def parse_target(spec: str, host: str = "127.0.0.1") -> Target:
    """Parse 'torchserve-grpc-direct:digits', optionally with '@port' or '@host:port' at the end."""
    spec, _, where = spec.partition("@")
    if ":" in where:
        host, _, port = where.rpartition(":")
    else:
        port = where
    try:
        name, model = spec.split(":", 1)
        framework, protocol, path = name.split("-")
    except ValueError:
        raise ValueError(f"target {spec!r} is not '<framework>-<protocol>-<path>:<model>'") from None
    return Target(framework, protocol, path, model, host, int(port) if port else None)


def expand(patterns: list[str], models: list[str]) -> list[Target]:
    """All targets matching patterns like 'all', 'torchserve-*-direct' or 'tfserving-grpc-gateway:digits'."""
    out: list[Target] = []
    for fw, proto, path, model in itertools.product(FRAMEWORKS, PROTOCOLS, PATHS, models):
        t = Target(fw, proto, path, model)
        name = f"{fw}-{proto}-{path}"
        for pat in patterns:
            pat_name, _, pat_model = pat.partition(":")
            parts = pat_name.split("-") if pat_name != "all" else ["*", "*", "*"]
            if (
                len(parts) == 3
                and all(p in ("*", v) for p, v in zip(parts, name.split("-"), strict=True))
                and pat_model in ("", model)
                and t not in out
            ):
                out.append(t)
    return out


def bearer_for(t: Target, key_file: Path) -> str:
    """The token a request to `t` carries, '' for none: TorchServe's inference key for its direct targets; for
    gateway targets the gateway's API key, which `make up` writes beside TorchServe's (`<run>/gateway/api_key`)
    when the gateway is reachable beyond loopback and so requires one."""
    if (t.framework, t.path) == ("torchserve", "direct"):
        return tskeys.read_key(key_file)
    gateway_key = tskeys.gateway_api_key_in(key_file.parent.parent)
    if t.path == "gateway" and gateway_key.is_file():
        return gateway_key.read_text(encoding="utf-8").strip()
    return ""
