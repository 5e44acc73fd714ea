"""REST user on Locust's FastHttpUser (geventhttpclient): TorchServe, TF Serving and the gateway's v2 REST."""

from __future__ import annotations

import time
from typing import Any

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.drive import Outcome, Result
from loadtest.targets import bearer_for
from loadtest.users.base import Driver
from loadtest.users.codecs import parse_server_timing
from loadtest.users.coordination import coordinator

# TorchServe 0.12 answers an expired or wrong key with 400 InvalidKeyException (not 401).
STALE_KEY_MARKER = b"InvalidKeyException"


class RestUser(FastHttpUser):
    """Sends prebuilt bodies; each send runs in its own greenlet on a pool large enough for open loop."""

    concurrency = 512  # connections: an open-loop generator must never queue a send behind a busy socket
    insecure = False
    max_retries = 0  # a retry would hide a failure and double-count a send

    def __init__(self, environment: Any) -> None:
        driver = coordinator(environment).driver_for(type(self))
        self.host = driver.cfg.target.address  # the target names its address; -H is only Locust's default
        super().__init__(environment)
        self.driver: Driver = driver
        self.token = self._token()

    def _token(self) -> str:
        return bearer_for(self.driver.cfg.target, self.driver.cfg.key_file)

    def send(self) -> Outcome:
        """One request; the outcome classifies it for the recorder and Locust's own statistics, with the
        gateway's `Server-Timing` durations when it sent them."""
        call = self.driver.next_call()
        headers = dict(call.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with self.client.request(
            "POST",
            call.path,
            data=call.body,  # type: ignore[arg-type]  # bytes go out as-is; the stub is too narrow
            headers=headers,
            catch_response=True,
            name=self.driver.cfg.target.id,
        ) as resp:
            done = time.perf_counter()  # the body has been read; what follows is the generator's own work
            if self.token and (
                resp.status_code == 401 or (resp.status_code == 400 and STALE_KEY_MARKER in (resp.content or b""))
            ):
                self.token = self._token()  # TorchServe tokens expire; the next send uses the fresh one
            if resp.status_code != 200 or resp.content is None:
                resp.failure(f"HTTP {resp.status_code}")
                return "errors"
            outcome = self.driver.judge(call, resp.content)
            if outcome == "wrong":
                resp.failure("wrong answer")
            timing = resp.headers.get("Server-Timing") if resp.headers else None
            return Result(outcome, done, parse_server_timing(timing) if timing else None)

    @task
    def run_point(self) -> None:
        """Drive the whole point, then report and stop."""
        coordinator(self.environment).run(self.driver, self.send)
