"""E2E helpers: where the real stacks are, and gateways configured for them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the gateway tests' conftest helpers
from gateway_harness import Running, serve  # noqa: E402

from gateway.settings import Settings  # noqa: E402

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

    def settings(self, ts_protocol: str = "rest", tf_protocol: str = "grpc", **route: Any) -> Settings:
        """Gateway settings pointing at these stacks; `route` overrides fields of every model's route."""
        base = Settings(routes_file=REPO / "gateway" / "routes.yaml")
        models = {name: {**r.model_dump(), **route} for name, r in base.routes.models.items()}
        p = self.ports
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
                    "timeout_s": 30,
                },
                "tfserving": {
                    "protocol": tf_protocol,
                    "rest_url": f"http://127.0.0.1:{p.tf_rest}",
                    "grpc_target": f"127.0.0.1:{p.tf_grpc}",
                    "timeout_s": 30,
                },
            },
            limits={"health_interval_s": 1.0},
        )


@contextmanager
def gateway(stacks: Stacks, **kwargs: Any) -> Iterator[Running]:
    """An in-process gateway (uvicorn thread) on these stacks."""
    with serve(stacks.settings(**kwargs)) as running:
        yield running
