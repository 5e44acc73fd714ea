"""The process model: uvicorn (N workers) whose SIGTERM first turns readiness off, then drains.

On the first SIGTERM (or SIGINT) a worker keeps serving for `drain_delay_s` while `/v2/health/ready` and
gRPC `ServerReady` say not ready, so a load balancer stops sending; then uvicorn stops accepting and gives
in-flight requests up to `graceful_timeout_s`; then the lifespan stops gRPC (same grace) and the backends.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors import Multiprocess

from gateway.settings import Settings

log = logging.getLogger(__name__)


def app_state(app: Any, name: str) -> Any:
    """`app.state.<name>` of uvicorn's loaded app, looked up through uvicorn's own middleware wrapping it; None
    when nothing there has it."""
    for _ in range(8):
        value = getattr(getattr(app, "state", None), name, None)
        if value is not None:
            return value
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
            plane = app_state(self.config.loaded_app, "plane") if self.config.loaded else None
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


class HeadWithBody:
    """The transport as one response cycle sees it: the response head is held back and sent with the body.

    uvicorn writes a head and its body in two calls: two syscalls, two packets, two wake-ups of the client. On
    loopback or in a VM each costs about as much as the gateway's Python work per request (loadtest.gatewaybench.cpu).
    HEAD responses have no body write, so their head goes out at once.
    """

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._hold = cycle.scope["method"] != "HEAD"

    def write(self, data: bytes) -> None:
        """Hold the first write after the response started (its head); prepend it to the next."""
        if self._hold and self._cycle.response_started:
            self._hold, self._head = False, data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def close(self) -> None:
        """Send a held head first (the app failed after starting its response), then close."""
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadWithBodyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing each response's head and first body chunk in one call."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # a new cycle (not an upgrade's early return)
            cycle.transport = cast(asyncio.Transport, HeadWithBody(self.transport, cycle))


def config_for(settings: Settings, app: Any = "gateway.app:app_from_env", **overrides: Any) -> uvicorn.Config:
    """uvicorn's config from the server settings (`app`: an import string for workers, or an app object)."""
    server = settings.server
    options: dict[str, Any] = {
        "factory": isinstance(app, str),
        "host": server.host,
        "port": server.port,
        "workers": server.workers,
        "loop": "uvloop",
        "http": "gateway.lane:LaneProtocol",  # plain inference POSTs skip ASGI; the rest as uvicorn serves it
        # uvicorn annotates int but waits with asyncio.wait_for, so fractions of a second work
        "timeout_graceful_shutdown": cast(int, server.graceful_timeout_s),
        "access_log": False,
        "server_header": False,  # `server: uvicorn` tells a client what to attack and nothing it needs
        # Nothing here reads the client's address or scheme, so uvicorn's X-Forwarded-* layer (an IP parse per
        # request) would be work on every request's path for no reader.
        "proxy_headers": False,
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
