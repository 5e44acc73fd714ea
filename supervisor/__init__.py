"""Native process supervisor: starts the stack's services (TorchServe, key renewal, the TF side, the gateway).

Generic parts live here (processes, readiness, state, layout, the service registry); each service's launch
plug-in lives beside what it starts (serving/torchserve/launch.py, serving/tfserving/launch.py, gateway/launch.py).

CLI: `python -m supervisor up|down|status`. Python API (test fixtures, gateway, load tests):

    stack = Stack("run", "artifacts", Ports.ephemeral())
    stack.up(["torchserve", "tfserving"])
    token = stack.token()          # TorchServe inference key, re-read from the key file on each call
    stack.down()
"""

from __future__ import annotations

from contract.ports import Ports
from supervisor.errors import (
    ConfigError,
    KeyFileError,
    PortBusyError,
    PreflightError,
    ReadinessError,
    SupervisorError,
)
from supervisor.layout import Layout
from supervisor.services import DEFAULT_SERVICES, SERVICES, Service
from supervisor.stack import ServiceStatus, Stack
from supervisor.state import ServiceState, StackState

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
]
