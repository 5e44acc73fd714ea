"""Native process supervisor: starts TorchServe and the TF Serving stand-in (later the gateway) on 127.0.0.1.

CLI: `python -m serving.supervisor up|down|status`. Python API (test fixtures, gateway, load tests):

    stack = Stack("run", "artifacts", Ports.ephemeral())
    stack.up(["torchserve", "tfserving"])
    token = stack.token()          # TorchServe inference key, re-read from key_file.json on each call
    stack.down()
"""

from __future__ import annotations

from serving.supervisor.errors import (
    ConfigError,
    KeyFileError,
    PortBusyError,
    PreflightError,
    ReadinessError,
    SupervisorError,
)
from serving.supervisor.layout import Layout
from serving.supervisor.ports import Ports
from serving.supervisor.services import DEFAULT_SERVICES, SERVICES, Service
from serving.supervisor.stack import ServiceStatus, Stack
from serving.supervisor.state import ServiceState, StackState
from serving.supervisor.torchserve import read_token

__all__ = [
    "DEFAULT_SERVICES",
    "SERVICES",
    "ConfigError",
    "KeyFileError",
    "Layout",
    "PortBusyError",
    "Ports",
    "PreflightError",
    "ReadinessError",
    "Service",
    "ServiceState",
    "ServiceStatus",
    "Stack",
    "StackState",
    "SupervisorError",
    "read_token",
]
