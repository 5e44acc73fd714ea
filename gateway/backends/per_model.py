"""Backend selection per model: a stack whose models live at their own addresses (`routes.models.<m>.endpoints`).

KServe gives each InferenceService its own host, so one stack is several servers. The core still sees one
backend per stack (one breaker, one in-flight limit, one metrics label); this wrapper sends each call to the
client of the model it is for.
"""

from __future__ import annotations

from gateway.backends.base import Backend
from gateway.backends.kserve_v1 import KServeV1Backend
from gateway.backends.tfserving import TFServingBackend
from gateway.backends.torchserve import TorchServeBackend
from gateway.errors import UpstreamError
from gateway.metadata import ModelMetadata
from gateway.settings import BackendName, BackendSettings, ModelEndpoint, TFServingSettings, TorchServeSettings
from gateway.tensors import InferTensor


def native_client(name: BackendName, settings: BackendSettings) -> Backend:
    """The stack's own client (TorchServe or TF Serving API) for these settings."""
    if name == "torchserve":
        assert isinstance(settings, TorchServeSettings)
        return TorchServeBackend(settings)
    assert isinstance(settings, TFServingSettings)
    return TFServingBackend(settings)


def endpoint_client(name: BackendName, stack: BackendSettings, endpoint: ModelEndpoint) -> Backend:
    """A client for one model's own address: the stack's settings with the endpoint's fields over them."""
    update: dict[str, str] = {}
    if endpoint.rest_url is not None:
        update["rest_url"] = endpoint.rest_url
    if endpoint.grpc_target is not None:
        update["grpc_target"] = endpoint.grpc_target
    if endpoint.protocol == "kserve-v1":
        return KServeV1Backend(name, stack.model_copy(update={**update, "protocol": "rest"}))
    if endpoint.protocol is not None:
        update["protocol"] = endpoint.protocol
    return native_client(name, stack.model_copy(update=update))


class PerModelBackend(Backend):
    """One stack as several servers: each model's calls go to its own client, the rest to the shared one."""

    def __init__(
        self, name: str, settings: BackendSettings, clients: dict[str, Backend], shared: Backend | None
    ) -> None:
        super().__init__(settings)
        self.name = name
        self.clients = clients
        """Model -> the client of its own address."""
        self.shared = shared
        """The stack's client for models without an endpoint (None when every routed model has one)."""

    def client(self, model: str) -> Backend:
        """The client that serves `model`."""
        chosen = self.clients.get(model, self.shared)
        if chosen is None:
            raise UpstreamError(f"no endpoint for model {model!r}", backend=self.name)
        return chosen

    def _all(self) -> list[Backend]:
        return [*self.clients.values(), *([self.shared] if self.shared is not None else [])]

    async def start(self) -> None:
        for client in self._all():
            await client.start()

    async def close(self) -> None:
        for client in self._all():
            await client.close()

    async def infer(
        self,
        model: str,
        version: str | None,
        inputs: list[InferTensor],
        *,
        timeout_s: float,
        request_id: str,
        limit: str = "",
    ) -> list[InferTensor]:
        client = self.client(model)
        return await client.infer(model, version, inputs, timeout_s=timeout_s, request_id=request_id, limit=limit)

    async def _infer(
        self, model: str, version: str | None, inputs: list[InferTensor], timeout_s: float, request_id: str
    ) -> list[InferTensor]:
        return await self.client(model).infer(model, version, inputs, timeout_s=timeout_s, request_id=request_id)

    def forwards(self, model: str, wire: str) -> bool:
        chosen = self.clients.get(model, self.shared)
        return chosen is not None and chosen.forwards(model, wire)

    async def forward(
        self, model: str, version: str | None, body: bytes, *, timeout_s: float, request_id: str, limit: str = ""
    ) -> bytes:
        client = self.client(model)
        return await client.forward(model, version, body, timeout_s=timeout_s, request_id=request_id, limit=limit)

    async def metadata(self, model: str, version: str | None, declared: ModelMetadata | None) -> ModelMetadata:
        return await self.client(model).metadata(model, version, declared)

    async def healthy(self, model: str) -> bool:
        try:
            client = self.client(model)
        except UpstreamError:
            return False
        return await client.healthy(model)
