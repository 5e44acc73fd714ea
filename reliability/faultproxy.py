"""A fault-injecting TCP proxy (asyncio) to put in front of a real server: pass, delay, drop, reset, blackhole.

`python -m reliability.faultproxy --listen 9000 --upstream 127.0.0.1:<TF REST port> --mode delay --delay-s 2`
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "delay", "drop", "reset", "blackhole"]
MODES: tuple[str, ...] = ("pass", "delay", "drop", "reset", "blackhole")


class FaultProxy:
    """Forwards TCP to `upstream`; `mode` (changeable at run time) decides what happens to new data.

    delay: every upstream->client chunk is held `delay_s`; drop: new connections are closed at once;
    reset: new connections are reset (RST); blackhole: requests are read and never answered.
    """

    def __init__(self, upstream_host: str, upstream_port: int, listen_port: int = 0, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.listen_port = listen_port
        self.mode: Mode = "pass"
        self.delay_s = 0.0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def set(self, mode: Mode, delay_s: float = 0.0) -> None:
        """Switch the fault mode for data and connections from now on."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.delay_s = mode, delay_s

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool) -> None:
        try:
            while chunk := await reader.read(65536):
                if delayed and self.mode == "delay":
                    await asyncio.sleep(self.delay_s)
                if self.mode == "blackhole":
                    continue
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode in ("drop", "reset"):
            if self.mode == "reset":  # SO_LINGER 0: close sends RST instead of FIN
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer, False), self._pipe(up_reader, writer, True))
        finally:
            self._writers.difference_update((writer, up_writer))

    def cut(self) -> None:
        """Close every open connection now (as a crashed server would)."""

        def close_all() -> None:
            for w in list(self._writers):
                w.close()

        if self._loop is not None:
            self._loop.call_soon_threadsafe(close_all)

    async def serve(self) -> None:
        """Serve until cancelled (for the CLI)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.listen_port)
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> FaultProxy:
        """Serve from a background thread with its own loop; returns once the port is bound."""
        ready = threading.Event()

        def target() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def boot() -> None:
                self._server = await asyncio.start_server(self._handle, self.host, self.listen_port)
                ready.set()

            loop.run_until_complete(boot())
            loop.run_forever()

        self._thread = threading.Thread(target=target, name="faultproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop thread."""
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None


def main(argv: list[str] | None = None) -> None:
    """Run one proxy in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m reliability.faultproxy", description=__doc__)
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port")
    parser.add_argument("--mode", choices=MODES, default="pass")
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    host, port = args.upstream.rsplit(":", 1)
    proxy = FaultProxy(host, int(port), args.listen)
    proxy.set(args.mode, args.delay_s)
    asyncio.run(proxy.serve())


if __name__ == "__main__":
    main()
