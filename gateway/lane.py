"""The inference lane: uvicorn's HTTP protocol handing a plain inference POST straight to its handler.

uvicorn turns every request into ASGI: a scope, receive and send callables exchanging message dicts, each response
header checked by two regexes, then Starlette's entry and the gateway's layers before the inference fast path
(gateway/fastpath.py). The lane keeps uvicorn's parser, connections, keep-alive, flow control and graceful
shutdown, and for the common request skips the rest (16 % of the gateway's CPU per request when it is busy; at low
rates the saving is within the noise: docs/gateway-performance.md): once the head of a POST to an inference path
is parsed and the edge's rules (gateway/middleware.py EdgeRules) admit it, one task awaits the body, calls the same
handler the fast path calls (`fastpath.respond`) and writes the head and body in one write.

Only the plain case takes the lane: HTTP/1.1, a body framed by one Content-Length, no `Expect: 100-continue`, no
upgrade, no percent-escapes in the path, nothing pipelined ahead of it, a request the edge admits. Everything else
(refusals included, which the edge then renders) goes through ASGI as before, so every error keeps its one
rendering and every rule its one owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import httptools
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.flow_control import CLOSE_HEADER, FlowControl
from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle

from gateway.fastpath import head_fields, match, respond
from gateway.middleware import EdgeRules
from gateway.rest import Handler
from gateway.server import HeadWithBodyProtocol, app_state
from gateway.telemetry import request_id

log = logging.getLogger(__name__)

FAILED = STATUS_LINE[500] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n"
FAILED += b"\r\nInternal Server Error"
"""What uvicorn sends when an app fails before its response started."""


class InferenceLane:
    """An app's lane: its edge rules, its state (whose `plane` the lifespan sets) and the Retry-After of a 503
    that knows no better. create_app puts one on `app.state.lane`; LaneProtocol finds it there."""

    def __init__(self, rules: EdgeRules, state: Any, unavailable_retry_s: float) -> None:
        self.rules = rules
        self.state = state
        self.unavailable_retry_s = unavailable_retry_s

    async def serve(
        self,
        cycle: RequestResponseCycle,
        flow: FlowControl,
        handler: Handler,
        params: dict[str, str],
        rid: str,
    ) -> None:
        """Answer one admitted request on `cycle` (uvicorn's per-request state, kept so its protocol's body
        callbacks, disconnects and shutdown work as for any request)."""
        request_id.set(rid)  # this task's own context: its logs and its upstream calls carry the id
        start = time.perf_counter()
        try:
            while cycle.more_body and not cycle.disconnected:
                flow.resume_reading()  # uvicorn pauses reading past its high-water mark until the body is asked for
                await cycle.message_event.wait()
                cycle.message_event.clear()
            if cycle.disconnected:
                return
            body, cycle.body = cycle.body, b""
            headers = cast(list[tuple[bytes, bytes]], cycle.scope["headers"])  # the protocol's own list
            status, answer = await respond(self.state, handler, params, headers, body, start, self.unavailable_retry_s)
            head = _head(status, head_fields(answer), cycle.default_headers, rid, cycle.keep_alive)
            if flow.write_paused and not cycle.disconnected:
                await flow.drain()
            if cycle.disconnected:
                return
            cycle.response_started = cycle.response_complete = True
            cycle.transport.write(head + answer.body)
        except asyncio.CancelledError:  # the server's graceful shutdown ran out of time
            cycle.transport.close()
            raise
        except Exception:  # as uvicorn treats an app's failure: a 500 if nothing was sent, and the connection closed
            log.exception("inference lane failed")
            if not cycle.response_started and not cycle.disconnected:
                cycle.response_started = True
                cycle.transport.write(FAILED)
            cycle.transport.close()
            return
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()


def _head(
    status: int,
    fields: list[tuple[bytes, bytes]],
    default: list[tuple[bytes, bytes]],
    rid: str,
    keep_alive: bool,
) -> bytes:
    """The response head: status line, uvicorn's default fields (its Date), the answer's, the request id, and
    `connection: close` when the connection ends after it."""
    parts = [STATUS_LINE[status]]
    for name, value in (*default, *fields, (b"x-request-id", rid.encode("latin-1"))):
        if HEADER_VALUE_RE.search(value):  # as uvicorn refuses them: a value must not split the head
            raise RuntimeError(f"invalid value in response header {name!r}")
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(CLOSE_HEADER[0] + b": " + CLOSE_HEADER[1] + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class LaneProtocol(HeadWithBodyProtocol):
    """The gateway's HTTP protocol: plain inference POSTs take the lane, every other request goes to the ASGI
    app as uvicorn sends it (with the head and first body chunk in one write). At TRACE log level, where uvicorn
    logs every ASGI message, nothing takes the lane."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lane = None if self.logger.isEnabledFor(TRACE_LOG_LEVEL) else app_state(self.app, "lane")
        self.lane: InferenceLane | None = lane if isinstance(lane, InferenceLane) else None

    def on_headers_complete(self) -> None:
        if self.lane is None or not self._take(self.lane):
            super().on_headers_complete()

    def _take(self, lane: InferenceLane) -> bool:
        """Start the lane's task for this request and say so, or say it is not one for the lane."""
        parser = self.parser
        if parser.get_method() != b"POST" or parser.get_http_version() != "1.1" or self.expect_100_continue:
            return False
        if parser.should_upgrade() or self.root_path or self.limit_concurrency is not None:
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # pipelined behind a request still being answered: uvicorn queues it
        parsed = httptools.parse_url(self.url)
        if b"%" in parsed.path:
            return False  # the path as uvicorn would unquote it
        path = parsed.path.decode("ascii")
        found = match(path)
        if found is None:
            return False
        admission = lane.rules.admit(path, self.headers)
        if admission.refusal is not None or not admission.framed:
            return False
        scope = self.scope
        scope["method"], scope["path"], scope["raw_path"] = "POST", path, parsed.path
        scope["query_string"] = parsed.query or b""
        self.cycle = RequestResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=CLOSE_HEADER not in self.headers,  # uvicorn's own test for a client's `Connection: close`
            on_response=self.on_response_complete,
        )
        task = self.loop.create_task(lane.serve(self.cycle, self.flow, *found, admission.request_id))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        return True
