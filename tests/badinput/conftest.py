"""Bad-input fixtures: one real `python -m gateway` process in front of the session's native stacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from corpus import MAX_BODY


@pytest.fixture(scope="session")
def bad_gateway(native_stack: object) -> Iterator[object]:
    """The gateway (failover route, 1 MiB body limit), as users run it: uvicorn with httptools."""
    from reliability.procs import GatewayProcess

    env = {
        "TWINSERVE_ROUTES__MODELS__DIGITS__POLICY": "failover",
        "TWINSERVE_LIMITS__MAX_BODY_BYTES": str(MAX_BODY),
    }
    gw = GatewayProcess(native_stack.stack, env).start()  # type: ignore[attr-defined]
    try:
        yield gw
    finally:
        gw.stop()
