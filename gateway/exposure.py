"""Secure by default beyond loopback: no unauthenticated gateway on the network unless a setting says so.

The address that counts is where clients can reach the ports: `server.published_host` when it differs from
the bind address (a container binds 0.0.0.0 and is published on the machine's 127.0.0.1), else `server.host`.
"""

from __future__ import annotations

import ipaddress

from gateway.settings import Settings

ALLOW_ENV = "TWINSERVE_SERVER__ALLOW_UNAUTHENTICATED"
KEYS_ENV = "TWINSERVE_AUTH__API_KEYS"
KEY_FILE_ENV = "TWINSERVE_AUTH__API_KEY_FILE"
LEGACY_KEYS_ENV = "TWINSERVE_LIMITS__API_KEYS"  # the name before `auth` had its own section; still read


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or an empty wildcard: assume the network can reach it


def exposed_host(settings: Settings) -> str:
    """Where clients reach the gateway's ports."""
    return settings.server.published_host or settings.server.host


def refusal(settings: Settings) -> str | None:
    """Why the gateway must not start with these settings, or None when it may."""
    host = exposed_host(settings)
    if is_loopback(host) or settings.api_keys() or settings.server.allow_unauthenticated:
        return None
    return (
        f"refusing to serve on {host!r} without API keys: anyone who can reach it could run inference. "
        f"Set {KEYS_ENV} (a JSON list; formerly {LEGACY_KEYS_ENV}) or {KEY_FILE_ENV}, listen on 127.0.0.1, "
        f"or set {ALLOW_ENV}=true to allow it anyway"
    )


def metrics_public(settings: Settings) -> bool:
    """Whether /metrics is open when API keys are configured: as set, else only on loopback."""
    explicit = settings.auth.metrics_public
    return is_loopback(exposed_host(settings)) if explicit is None else explicit
