"""E2E helpers: where the real stacks are, and gateways configured for them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the gateway tests' conftest helpers
from gateway_harness import Running, serve

from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "artifacts"


@dataclass
class Stacks:
    """The running stacks: how to reach them and the supervisor handle."""

    stack: Any
    ports: Any
    run_dir: Path

    @property
    def key_file(self) -> Path:
        return self.run_dir / "torchserve" / "key_file.json"

    def settings(
        self,
        ts_protocol: str = "rest",
        tf_protocol: str = "grpc",
        limits: dict[str, Any] | None = None,
        tf_ports: tuple[int, int] | None = None,
        **route: Any,
    ) -> Settings:
        """Gateway settings pointing at these stacks; `route` overrides fields of every model's route,
        `limits` fields of the limits section, `tf_ports` (rest, grpc) redirects the TF side."""
        base = Settings(routes_file=REPO / "gateway" / "routes.yaml")
        models = {name: {**r.model_dump(), **route} for name, r in base.routes.models.items()}
        p = self.ports
        tf_rest, tf_grpc = tf_ports or (p.tf_rest, p.tf_grpc)
        return Settings(
            routes_file=None,
            routes={"models": models},
            server={"host": "127.0.0.1", "port": 0, "grpc_port": 0},
            backends={
                "torchserve": {
                    "protocol": ts_protocol,
                    "rest_url": f"http://127.0.0.1:{p.ts_inference}",
                    "grpc_target": f"127.0.0.1:{p.ts_grpc_inference}",
                    "key_file": self.key_file,
                    "management_url": f"http://127.0.0.1:{p.ts_management}",
                    "timeout_s": 30,
                },
                "tfserving": {
                    "protocol": tf_protocol,
                    "rest_url": f"http://127.0.0.1:{tf_rest}",
                    "grpc_target": f"127.0.0.1:{tf_grpc}",
                    "timeout_s": 30,
                },
            },
            limits={"health_interval_s": 2.0, **(limits or {})},
        )


@contextmanager
def gateway(stacks: Stacks, **kwargs: Any) -> Iterator[Running]:
    """An in-process gateway (uvicorn thread) on these stacks."""
    with serve(stacks.settings(**kwargs)) as running:
        yield running


def metric(url: str, prefix: str) -> float:
    """Sum of every sample whose line starts with `prefix` on the gateway's /metrics."""
    lines = requests.get(url + "/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.1) -> bool:
    """Poll `predicate` until true or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
