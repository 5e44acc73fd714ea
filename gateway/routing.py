"""Routing: pick the pin and sticky key out of a request's headers, and turn a model's route with them into a plan
(primary, fallback, shadow). The adapters hand headers over as they came; only this module knows which ones matter."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidArgument, Unavailable
from gateway.settings import BACKENDS, Route

PIN_KEYS = {"rest": "x-backend", "grpc": "backend"}
"""Where a client pins a stack: the `X-Backend` header, or the gRPC metadata key `backend`."""


def pin_of(headers: Mapping[str, str], protocol: str) -> str | None:
    """The stack the request pins, if any (an empty value pins nothing)."""
    return headers.get(PIN_KEYS[protocol]) or None


def pin_and_sticky(route: Route, headers: Mapping[str, str], protocol: str) -> tuple[str | None, str | None]:
    """The pin, and the value of the route's `sticky_header` (HTTP header or gRPC metadata key, case-insensitive)."""
    sticky = headers.get(route.sticky_header.lower()) if route.sticky_header else None
    return pin_of(headers, protocol), sticky


@dataclass(frozen=True)
class Plan:
    """Who answers (`primary`), who retries on upstream failure (`fallback`), who gets a mirror (`shadow`)."""

    primary: str
    fallback: str | None = None
    shadow: str | None = None


def sticky_fraction(key: str) -> float:
    """A stable number in [0, 1) for a sticky key (same key, same backend, in every worker process)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def pick_weighted(weights: Mapping[Any, float], candidates: Sequence[str], u: float) -> str:
    """The candidate whose cumulative weight band holds `u` (u in [0, 1))."""
    chosen = [b for b in candidates if weights.get(b, 0.0) > 0]
    if not chosen:
        return candidates[0]
    total = sum(weights[b] for b in chosen)
    edge = 0.0
    for backend in chosen:
        edge += weights[backend] / total
        if u < edge:
            return backend
    return chosen[-1]


def plan(
    model: str,
    route: Route,
    *,
    pin: str | None,
    sticky: str | None,
    serving: Sequence[str],
    usable: Sequence[str],
    u: float,
) -> Plan:
    """Choose backends for one request.

    `serving`: backends that serve this model (their metadata agreed); `usable`: those whose circuit is not
    open. An explicit pin wins over the policy (no mirror, no failover: the client asked for that stack).
    """
    if pin:
        if pin not in BACKENDS:
            raise InvalidArgument(f"backend {pin!r} is unknown; use one of {', '.join(BACKENDS)}")
        if pin not in serving:
            raise Unavailable(f"model {model!r} is not served by {pin} now", backend=pin)
        return Plan(pin)
    if not serving:
        raise Unavailable(f"model {model!r} has no serving backend")
    other = next((b for b in serving if b != route.backend), None)
    if route.policy == "pin":
        if route.backend not in serving:
            raise Unavailable(f"model {model!r} is not served by {route.backend} now", backend=route.backend)
        return Plan(route.backend)
    if route.policy == "split":
        candidates = [b for b in serving if b in usable] or list(serving)
        return Plan(pick_weighted(route.weights, candidates, sticky_fraction(sticky) if sticky else u))
    if route.policy == "shadow":
        primary = route.backend if route.backend in serving else serving[0]
        return Plan(primary, shadow=other if primary == route.backend else None)
    # failover: start on the primary unless its circuit is open, retry once on the other
    if route.backend in usable or other is None or other not in usable:
        primary = route.backend if route.backend in serving else serving[0]
    else:
        primary = other
    fallback = next((b for b in serving if b != primary), None)
    return Plan(primary, fallback=fallback)
