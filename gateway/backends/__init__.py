"""Backend clients: each speaks one serving stack's native REST or gRPC protocol (or KServe's v1 in front of it)."""

from __future__ import annotations

from gateway.backends.base import Backend
from gateway.backends.kserve_v1 import KServeV1Backend
from gateway.backends.per_model import PerModelBackend, endpoint_client, native_client
from gateway.backends.tfserving import TFServingBackend
from gateway.backends.torchserve import TorchServeBackend
from gateway.settings import BACKENDS, Settings


def build_backends(settings: Settings) -> dict[str, Backend]:
    """One client per enabled backend, in a fixed order (torchserve, tfserving).

    A stack for which some route names its own endpoint becomes a PerModelBackend: those models go to their
    endpoint's client, the others to the stack's shared client (made only if some model needs it).
    """
    backends: dict[str, Backend] = {}
    routes = settings.routes.models
    for name in BACKENDS:
        stack = getattr(settings.backends, name)
        if not stack.enabled:
            continue
        own = {model: route.endpoints[name] for model, route in routes.items() if name in route.endpoints}
        if not own:
            backends[name] = native_client(name, stack)
            continue
        clients = {model: endpoint_client(name, stack, endpoint) for model, endpoint in own.items()}
        shared = native_client(name, stack) if set(routes) - set(own) else None
        backends[name] = PerModelBackend(name, stack, clients, shared)
    return backends


__all__ = ["Backend", "KServeV1Backend", "PerModelBackend", "TFServingBackend", "TorchServeBackend", "build_backends"]
