"""A recording tap in front of the TF side's REST port: what the gateway sent upstream and what came back.

It forwards every request to the real TF side unchanged; the only thing it adds is on demand, to inject a fault
(`fault`: answer `:predict` itself with this status and body) or TF Serving's real layout (`indent`: re-indent
the answer, as real TF Serving pretty-prints where the stand-in writes compact JSON), so a test can tell bytes
handed on from bytes re-encoded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from contract.ports import free_ports


@dataclass
class Exchange:
    """One `:predict` through the tap: the request body as the gateway sent it, the answer as the gateway got it."""

    path: str
    request: bytes
    status: int
    answer: bytes


@dataclass
class Tap:
    """Forwards to `upstream` (http://host:port) from a free loopback port, in a thread of its own."""

    upstream: str
    port: int = 0
    indent: bool = False
    fault: tuple[int, bytes] | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def predicts(self) -> list[Exchange]:
        """The `:predict` exchanges so far."""
        return [e for e in self.exchanges if e.path.endswith(":predict")]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        predict = request.path.endswith(":predict")
        if predict and self.fault is not None:
            status, answer = self.fault
        else:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                status, answer = resp.status, await resp.read()
            if predict and self.indent and status == 200:
                answer = json.dumps(json.loads(answer), indent=2).encode()
        if predict:
            self.exchanges.append(Exchange(request.path, body, status, answer))
        return web.Response(status=status, body=answer, content_type="application/json")

    def __enter__(self) -> Tap:
        (self.port,) = free_ports(1)
        started = threading.Event()

        async def main() -> None:
            self._session = aiohttp.ClientSession()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._stop = asyncio.Event()
            started.set()
            await self._stop.wait()
            await runner.cleanup()
            await self._session.close()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        assert started.wait(10), "tap did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
