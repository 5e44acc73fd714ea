"""Backend clients: each speaks one serving stack's native REST or gRPC protocol."""

from __future__ import annotations

from gateway.backends.base import Backend
from gateway.backends.tfserving import TFServingBackend
from gateway.backends.torchserve import TorchServeBackend
from gateway.settings import Settings


def build_backends(settings: Settings) -> dict[str, Backend]:
    """One client per enabled backend, in a fixed order (torchserve, tfserving)."""
    backends: dict[str, Backend] = {}
    if settings.backends.torchserve.enabled:
        backends["torchserve"] = TorchServeBackend(settings.backends.torchserve)
    if settings.backends.tfserving.enabled:
        backends["tfserving"] = TFServingBackend(settings.backends.tfserving)
    return backends


__all__ = ["Backend", "TFServingBackend", "TorchServeBackend", "build_backends"]
