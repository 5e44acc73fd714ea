"""Locust entry point: `locust -f loadtest/locustfile.py RestUser|GrpcUser --lt-target ... --headless`.

One user per process drives one point (see loadtest/users/); the `--lt-*` options are a PointSpec
(loadtest/spec.py), which `python -m loadtest.run` renders for every point it measures. Running Locust by hand
works the same way, e.g.
  locust -f loadtest/locustfile.py RestUser --headless -u 2 -r 2 --processes 2 -H http://127.0.0.1:<TS REST port> \\
      --lt-target torchserve-rest-direct:digits --lt-rate 100 --lt-out results/manual/point.json
"""

from __future__ import annotations

from typing import Any

from locust import events

from loadtest.spec import add_options
from loadtest.users.coordination import Coordinator
from loadtest.users.grpc_user import GrpcUser
from loadtest.users.rest import RestUser

__all__ = ["GrpcUser", "RestUser"]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    environment.twinserve = Coordinator(environment)
