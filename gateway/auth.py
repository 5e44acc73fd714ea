"""Optional ingress API keys: Bearer tokens compared in constant time; health and metrics stay open."""

from __future__ import annotations

import hmac
import json
from typing import Any

from gateway.errors import GatewayError, PermissionDenied, Unauthenticated

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


class ApiKeyMiddleware:
    """Pure ASGI middleware enforcing ApiKeys on every HTTP path except `open_paths`."""

    def __init__(self, app: Any, keys: ApiKeys, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.keys.enabled or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            self.keys.check(header)
        except GatewayError as exc:
            body = json.dumps({"error": exc.message}).encode()
            headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
            await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
