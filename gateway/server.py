"""The process model: uvicorn (N workers) whose SIGTERM first turns readiness off, then drains.

On the first SIGTERM (or SIGINT) a worker keeps serving for `drain_delay_s` while `/v2/health/ready` and
gRPC `ServerReady` say not ready, so a load balancer stops sending; then uvicorn stops accepting and gives
in-flight requests up to `graceful_timeout_s`; then the lifespan stops gRPC (same grace) and the backends.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import Any, cast

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.settings import Settings

log = logging.getLogger(__name__)


def _plane_of(app: Any) -> Any:
    """The DataPlane behind uvicorn's loaded app (which may be wrapped in uvicorn's own middleware)."""
    for _ in range(8):
        state = getattr(app, "state", None)
        if state is not None and hasattr(state, "plane"):
            return state.plane
        app = getattr(app, "app", None)
    return None


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose exit signal starts a drain instead of an immediate shutdown."""

    def __init__(self, config: uvicorn.Config, drain_delay_s: float) -> None:
        super().__init__(config)
        self.drain_delay_s = drain_delay_s
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: not ready now, exit after the delay; a second SIGINT forces, repeats of SIGTERM wait."""
        if self.drain_until is None:
            self.drain_until = time.monotonic() + self.drain_delay_s
            plane = _plane_of(self.config.loaded_app) if self.config.loaded else None
            if plane is not None:
                plane.draining = True  # plain attribute store: safe inside a signal handler
            if self.drain_delay_s <= 0:
                super().handle_exit(sig, frame)
            return
        if sig == signal.SIGINT:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s): exit once the drain delay is over."""
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def config_for(settings: Settings, app: Any = "gateway.app:app_from_env", **overrides: Any) -> uvicorn.Config:
    """uvicorn's config from the server settings (`app`: an import string for workers, or an app object)."""
    server = settings.server
    options: dict[str, Any] = {
        "factory": isinstance(app, str),
        "host": server.host,
        "port": server.port,
        "workers": server.workers,
        "loop": "uvloop",
        "http": "httptools",
        # uvicorn annotates int but waits with asyncio.wait_for, so fractions of a second work
        "timeout_graceful_shutdown": cast(int, server.graceful_timeout_s),
        "access_log": False,
        "log_level": settings.telemetry.log_level.lower(),
    }
    return uvicorn.Config(app, **{**options, **overrides})


def run(settings: Settings) -> None:
    """Serve `gateway.app:app_from_env` until drained: what uvicorn.run does, with DrainingServer."""
    config = config_for(settings)
    instance = DrainingServer(config, settings.server.drain_delay_s)
    if config.workers > 1:
        sock = config.bind_socket()
        Multiprocess(config, target=instance.run, sockets=[sock]).run()
    else:
        instance.run()
