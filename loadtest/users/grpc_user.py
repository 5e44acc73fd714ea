"""gRPC user: grpcio made gevent-cooperative, firing Locust request events for every call.

grpcio's sync API blocks the calling OS thread in C-core, which would freeze every greenlet of the process;
`grpc.experimental.gevent.init_gevent()` (called once, before any channel exists) makes C-core poll
through gevent, so each send's greenlet yields while its call is in flight (tests/loadtest prove it).
Bodies are prebuilt bytes, so the channel's unary_unary uses identity (de)serializers.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from grpc.experimental import gevent as grpc_gevent
from locust import User, task

from contract import tskeys
from loadtest.drive import Outcome, Result
from loadtest.targets import bearer_for
from loadtest.users.base import Driver
from loadtest.users.codecs import parse_server_timing
from loadtest.users.coordination import coordinator

grpc_gevent.init_gevent()
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


class GrpcUser(User):
    """One channel per process (HTTP/2 multiplexes every in-flight call over it)."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.driver: Driver = coordinator(environment).driver_for(type(self))
        # grpcio under gevent makes progress when the hub turns; with the timerfd pacer (which lets the hub sleep)
        # TorchServe gRPC direct fell from 945 to 519 req/s before the generator ran late, so it keeps the spin.
        self.driver.precise_pacer = False
        t = self.driver.cfg.target
        self.channel = grpc.insecure_channel(t.address, options=CHANNEL_OPTIONS)
        self.methods: dict[str, Any] = {}
        self.token = bearer_for(t, self.driver.cfg.key_file)

    def _method(self, path: str) -> Any:
        if path not in self.methods:
            self.methods[path] = self.channel.unary_unary(path)  # no serializers: bytes in, bytes out
        return self.methods[path]

    def send(self) -> Outcome:
        """One call; outcome (with the gateway's `server-timing` trailer, if any) for the recorder, a request
        event for Locust's statistics."""
        call = self.driver.next_call()
        metadata = list(call.headers.items())
        if self.token:
            metadata.append(("authorization", f"Bearer {self.token}"))
        t0 = time.perf_counter()
        exc: Exception | None = None
        body = b""
        outcome = "errors"
        timings: dict[str, float] = {}
        done: float | None = None
        try:
            body, rpc = self._method(call.path).with_call(
                call.body, metadata=metadata, timeout=self.driver.cfg.timeout_s
            )
            done = time.perf_counter()  # the answer is here; checking it is the generator's own work
            outcome = self.driver.judge(call, body)
            if outcome == "wrong":
                exc = ValueError("wrong answer")
            trailer = dict(rpc.trailing_metadata() or ()).get("server-timing")
            timings = parse_server_timing(trailer if isinstance(trailer, str) else None)
        except grpc.RpcError as error:
            exc = error
            if self.token and tskeys.grpc_rejected(error.code()):
                self.token = bearer_for(self.driver.cfg.target, self.driver.cfg.key_file)  # renewed; next send uses it
        self.environment.events.request.fire(
            request_type="grpc",
            name=self.driver.cfg.target.id,
            response_time=(time.perf_counter() - t0) * 1000,
            response_length=len(body),
            exception=exc,
            context={},
        )
        return Result(outcome, done, timings or None)

    @task
    def run_point(self) -> None:
        """Drive the whole point, then report and stop."""
        coordinator(self.environment).run(self.driver, self.send)

    def on_stop(self) -> None:
        """Close the channel."""
        self.channel.close()
