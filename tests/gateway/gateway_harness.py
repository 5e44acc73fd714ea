"""Gateway test harness: a real uvicorn+gRPC gateway in a thread, and a fault-injecting backend.

The fault backend is the only fake: it exists to inject failures (5xx, timeouts, refusals) on demand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import uvicorn

from gateway.app import create_app
from gateway.backends.base import Backend
from gateway.errors import UpstreamError
from gateway.metadata import ModelMetadata, TensorMeta
from gateway.server import config_for
from gateway.settings import BackendSettings, Settings
from gateway.tensors import InferTensor

DIGITS_META = ModelMetadata(
    "digits",
    ("1",),
    "fault",
    (TensorMeta("input", "FP32", (-1, 1, 8, 8)),),
    (TensorMeta("logits", "FP32", (-1, 10)), TensorMeta("probabilities", "FP32", (-1, 10))),
)


class FaultBackend(Backend):
    """Answers with a deterministic function of the input unless told to fail or stall."""

    def __init__(self, name: str, settings: BackendSettings | None = None, offset: float = 0.0) -> None:
        super().__init__(settings or BackendSettings(timeout_s=1.0))
        self.name = name
        self.offset = offset
        self.fail = False
        self.delay_s = 0.0
        self.calls = 0
        self.request_ids: list[str] = []
        self.health = True
        self.meta = DIGITS_META

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def _infer(
        self, model: str, version: str | None, inputs: list[InferTensor], timeout_s: float, request_id: str
    ) -> list[InferTensor]:
        self.calls += 1
        self.request_ids.append(request_id)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise UpstreamError("HTTP 503: injected", backend=self.name)
        x = inputs[0].data.reshape(inputs[0].shape[0], -1)[:, :10].astype(np.float32) + np.float32(self.offset)
        return [InferTensor.from_numpy("logits", x), InferTensor.from_numpy("probabilities", x / 2)]

    async def metadata(self, model: str, version: str | None, declared: ModelMetadata | None) -> ModelMetadata:
        return self.meta

    async def healthy(self, model: str) -> bool:
        return self.health


def fault_settings(**routes: Any) -> Settings:
    """Settings with only a `digits` route (given fields) and no routes file."""
    route = {"policy": "pin", "backend": "torchserve", **routes}
    return Settings(
        routes_file=None,
        routes={"models": {"digits": route}},
        server={"host": "127.0.0.1", "port": 0, "grpc_port": 0},
    )


class Running:
    """A gateway served by uvicorn in a background thread."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, app: Any) -> None:
        self.server = server
        self.thread = thread
        self.app = app
        sock = server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port: int = getattr(self.app.state, "grpc_port", 0)
        self.plane = self.app.state.plane

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (to poke the core from a test)."""
        return asyncio.run_coroutine_threadsafe(coro, self.server_loop).result(10)

    server_loop: asyncio.AbstractEventLoop


@contextmanager
def serve(settings: Settings, backends: dict[str, Backend] | None = None) -> Iterator[Running]:
    """Start create_app(settings) on an ephemeral port; stop it (gracefully) afterwards."""
    app = create_app(settings, backends=backends)
    # The server as `python -m gateway` configures it (its HTTP protocol and the inference lane included)
    config = config_for(settings, app, port=0, loop="asyncio", log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    loop_box: dict[str, asyncio.AbstractEventLoop] = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        loop_box["loop"] = loop
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.02)
    running = Running(server, thread, app)
    running.server_loop = loop_box["loop"]
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(30)
