"""The contract ports of a stack: the one place their numbers are written (docs/contracts.md)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


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


CONTRACT = Ports()
"""The default ports, as `make up` binds them and the containers publish them."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that are free at the time of the call (held together so they differ)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports
