"""Security fixtures: a real gateway process with ingress API keys, in front of the session's native stacks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from security_support import INGRESS_KEY


@pytest.fixture(scope="session")
def keyed_gateway(native_stack: object) -> Iterator[object]:
    """The gateway with one accepted ingress key; TorchServe reached over REST with its token."""
    from reliability.procs import GatewayProcess

    env = {
        "TWINSERVE_LIMITS__API_KEYS": json.dumps([INGRESS_KEY]),
        "TWINSERVE_BACKENDS__TORCHSERVE__PROTOCOL": "rest",
        "TWINSERVE_ROUTES__MODELS__DIGITS__POLICY": "split",
    }
    gw = GatewayProcess(native_stack.stack, env).start()  # type: ignore[attr-defined]
    try:
        yield gw
    finally:
        gw.stop()
