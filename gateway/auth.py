"""Optional ingress API keys: Bearer tokens compared in constant time; health and metrics stay open.

The middleware that enforces them on REST is gateway/middleware.py; the gRPC adapter calls `check` itself.
"""

from __future__ import annotations

import hmac

from gateway.errors import PermissionDenied, Unauthenticated

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})


class ApiKeys:
    """The accepted keys; an empty set turns authentication off."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        """Whether a key is required."""
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        """Accept `Bearer <key>` with a known key: 401 when missing, 403 when wrong; keys never logged."""
        if not self._keys:
            return
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        presented = authorization[7:].strip().encode()
        if not presented:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        # compare against every key so timing does not reveal which one matched
        if not any([hmac.compare_digest(presented, key) for key in self._keys]):
            raise PermissionDenied("API key not accepted")
