"""What every backend client offers the core, and the shared error mapping from upstream failures."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import grpc
import numpy as np

from gateway.errors import GatewayError, InvalidArgument, UpstreamError, UpstreamTimeout
from gateway.httpclient import HTTPClient, HTTPClientError
from gateway.metadata import ModelMetadata
from gateway.settings import BackendSettings
from gateway.tensors import V2_TO_NUMPY, InferTensor

T = TypeVar("T")

TF_REST_PREDICT = "tf-rest-predict"
"""A TF Serving REST `:predict` body (`instances` or `inputs`, no `signature_name`): the wire format a backend may
take unchanged (Backend.forwards)."""


class Backend(abc.ABC):
    """A client for one serving stack; owns its pooled HTTP client and gRPC channel."""

    name: str

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self._http: HTTPClient | None = None
        self.channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        """Open the pooled HTTP client and the gRPC channel (once, in the app lifespan)."""
        # Every call is bounded by our own deadline (infer) or its own timeout_s (metadata, health): no second timer.
        self._http = HTTPClient(self.settings.pool_size)
        options = [
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.max_send_message_length", 256 << 20),
        ]
        self.channel = grpc.aio.insecure_channel(self.settings.grpc_target, options=options)

    async def close(self) -> None:
        """Close the HTTP client and the channel."""
        if self._http is not None:
            await self._http.close()
        if self.channel is not None:
            await self.channel.close()

    @property
    def http(self) -> HTTPClient:
        """The pooled HTTP client (start() must have run)."""
        assert self._http is not None, "backend not started"
        return self._http

    @property
    def grpc(self) -> grpc.aio.Channel:
        """The channel (start() must have run)."""
        assert self.channel is not None, "backend not started"
        return self.channel

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
        """Run one inference within `timeout_s` (what set it: `limit`, for the message); upstream failures become
        UpstreamError/UpstreamTimeout naming this backend.

        The one timer that guards an upstream call: the core hands down what is left of the request's deadline
        (gateway/deadline.py), and gRPC clients send the same figure to the server as its deadline.
        """
        return await self._guard(self._infer(model, version, inputs, timeout_s, request_id), timeout_s, limit)

    def forwards(self, model: str, wire: str) -> bool:
        """Whether `forward` takes `model`'s request bodies in the wire format `wire` (e.g. TF_REST_PREDICT)."""
        return False

    async def forward(
        self, model: str, version: str | None, body: bytes, *, timeout_s: float, request_id: str, limit: str = ""
    ) -> bytes:
        """Send a request body already in this backend's own wire format as it is, and return the bytes of its
        answer undecoded; the same timer and error mapping as `infer` (only where `forwards` said yes)."""
        return await self._guard(self._forward(model, version, body, request_id), timeout_s, limit)

    async def _guard(self, call: Awaitable[T], timeout_s: float, limit: str) -> T:
        try:
            async with asyncio.timeout(timeout_s):
                return await call
        except GatewayError:
            raise
        except TimeoutError:
            why = f": {limit} passed" if limit else ""
            raise UpstreamTimeout(f"no answer within {timeout_s:.3g}s{why}", backend=self.name) from None
        except grpc.aio.AioRpcError as err:
            raise map_grpc_error(self.name, err) from None
        except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}", backend=self.name) from None

    async def _forward(self, model: str, version: str | None, body: bytes, request_id: str) -> bytes:
        """Protocol-specific pass-through (backends whose `forwards` says yes for some wire format)."""
        raise NotImplementedError(f"{self.name} forwards no request bodies")

    @abc.abstractmethod
    async def _infer(
        self, model: str, version: str | None, inputs: list[InferTensor], timeout_s: float, request_id: str
    ) -> list[InferTensor]:
        """Protocol-specific inference."""

    @abc.abstractmethod
    async def metadata(self, model: str, version: str | None, declared: ModelMetadata | None) -> ModelMetadata:
        """What this backend says the model looks like (TorchServe: the declared signature, probed)."""

    @abc.abstractmethod
    async def healthy(self, model: str) -> bool:
        """Active health check for one routed model: a cheap call that never raises."""


def probe_inputs(declared: ModelMetadata) -> list[InferTensor]:
    """A batch-of-1 zero input for each declared input: proves a signature the server cannot report itself."""
    shapes = {t.name: [1, *(d if d > 0 else 1 for d in t.shape[1:])] for t in declared.inputs}  # -1 -> 1
    return [
        InferTensor(t.name, t.datatype, shapes[t.name], np.zeros(shapes[t.name], dtype=V2_TO_NUMPY[t.datatype]))
        for t in declared.inputs
    ]


def map_grpc_error(backend: str, err: grpc.aio.AioRpcError) -> GatewayError:
    """Upstream gRPC status -> gateway error: INVALID_ARGUMENT stays a client error, the rest is upstream."""
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(f"{backend} rejected the request: {details}", backend=backend)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout(details or "deadline exceeded", backend=backend)
    return UpstreamError(f"{code.name}: {details}", backend=backend)


def map_http_error(backend: str, status: int, text: str) -> GatewayError:
    """Upstream HTTP error status -> gateway error: 400/413/422 stay client errors, the rest is upstream."""
    if status in (400, 413, 422):
        return InvalidArgument(f"{backend} rejected the request: {text[:500]}", backend=backend)
    if status in (408, 504):
        return UpstreamTimeout(f"HTTP {status}", backend=backend)
    return UpstreamError(f"HTTP {status}: {text[:200]}", backend=backend)
