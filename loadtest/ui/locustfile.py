"""Locust file of the web UI (`make locust`): one user class per target of the running stack.

The class picker is the target picker: "TorchServe gRPC via gateway · digits" is bound to that target (address,
protocol, model) and nothing else, so no free-text target and no class/target mismatch exists. Every process,
master or worker, builds the same classes from the TWINSERVE_* variables the launcher sets (catalog.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust import events

from loadtest.targets import Target
from loadtest.ui import catalog as _catalog
from loadtest.ui import fields as _fields
from loadtest.ui import web as _web
from loadtest.ui.session import UISession
from loadtest.users import grpc_user as _grpc
from loadtest.users import rest as _rest

CATALOG = _catalog.from_environment()


def _user_class(t: Target) -> type:
    """The user class of one target: the REST or gRPC user, bound to it, exactly one per run."""
    base = _grpc.GrpcUser if t.protocol == "grpc" else _rest.RestUser
    name = CATALOG.label_of(t)
    host = t.address if t.protocol == "rest" else f"grpc://{t.host}:{t.port}"
    attrs = {"__module__": __name__, "__doc__": f"{t.id} at {t.host}:{t.port}", "target": t, "host": host}
    return type(name, (base,), attrs | {"fixed_count": 1, "abstract": False})


# Locust finds user classes among this module's names; each is named after its target.
globals().update({CATALOG.label_of(t): _user_class(t) for t in CATALOG.targets})


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    _fields.add_options(parser)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    session = UISession(environment, CATALOG, Path(environment.parsed_options.twinserve_results))
    environment.twinserve = session
    if environment.web_ui is not None:
        _web.install(environment, session, CATALOG)
