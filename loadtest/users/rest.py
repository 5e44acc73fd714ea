"""REST user: TorchServe, TF Serving and the gateway's v2 REST over a lean keep-alive client (users/http.py)."""

from __future__ import annotations

import time
from typing import Any

from locust import User, task

from contract import tskeys
from loadtest.drive import Outcome, Result
from loadtest.targets import bearer_for
from loadtest.users.base import Driver
from loadtest.users.codecs import Call, parse_server_timing
from loadtest.users.coordination import coordinator
from loadtest.users.http import HTTPError, KeepAliveClient, request_bytes


class RestUser(User):
    """Sends prebuilt request bytes; each send runs in its own greenlet, on a pool large enough for open loop."""

    concurrency = 512  # connections: an open-loop generator must never queue a send behind a busy socket

    def __init__(self, environment: Any) -> None:
        driver = coordinator(environment).driver_for(type(self))
        t = driver.cfg.target
        self.host = t.address  # the target names its address; -H is only Locust's default
        super().__init__(environment)
        self.driver: Driver = driver
        self.client = KeepAliveClient(t.host, t.port, driver.cfg.timeout_s, self.concurrency)
        self.token = self._token()
        self._requests: dict[int, bytes] = {}  # id(call) -> the whole request, for the current token

    def _token(self) -> str:
        return bearer_for(self.driver.cfg.target, self.driver.cfg.key_file)

    def _request(self, call: Call) -> bytes:
        req = self._requests.get(id(call))
        if req is None:
            headers = dict(call.headers)
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            t = self.driver.cfg.target
            req = self._requests[id(call)] = request_bytes(f"{t.host}:{t.port}", call.path, call.body, headers)
        return req

    def send(self) -> Outcome:
        """One request; the outcome classifies it for the recorder and Locust's own statistics, with the
        gateway's `Server-Timing` durations when it sent them."""
        call = self.driver.next_call()
        t0 = time.perf_counter()
        error: str | None = None
        size = 0
        try:
            resp = self.client.post(self._request(call))
        except HTTPError as err:
            error, outcome, done, timings = str(err), "errors", None, None
        else:
            done = time.perf_counter()  # the body has been read; what follows is the generator's own work
            size = len(resp.body)
            if self.token and tskeys.rejected(resp.status, resp.body):
                self.token, self._requests = self._token(), {}  # TorchServe tokens expire; use the fresh one
            if resp.status != 200:
                error, outcome, timings = f"HTTP {resp.status}", "errors", None
            else:
                outcome = self.driver.judge(call, resp.body)
                error = "wrong answer" if outcome == "wrong" else None
                timing = resp.header("Server-Timing")
                timings = parse_server_timing(timing) if timing else None
        self.environment.events.request.fire(
            request_type="POST",
            name=self.driver.cfg.target.id,
            response_time=((done or time.perf_counter()) - t0) * 1000,
            response_length=size,
            exception=error,
            context={},
        )
        return Result(outcome, done, timings)

    @task
    def run_point(self) -> None:
        """Drive the whole point, then report and stop."""
        coordinator(self.environment).run(self.driver, self.send)

    def on_stop(self) -> None:
        """Close the idle connections."""
        self.client.close()
