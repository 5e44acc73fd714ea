"""gRPC adapter: `inference.GRPCInferenceService` over the same DataPlane. Translates (codec_grpc) and delegates."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from contract._generated import twinserve_kserve_pb2 as pb
from gateway.auth import ApiKeys
from gateway.codec_grpc import (
    Unparseable,
    decode_request,
    encode_response,
    metadata_response,
    parser,
    requested_outputs,
)
from gateway.core import DataPlane, InferRequest
from gateway.errors import GatewayError, InvalidArgument, client_message, grpc_code
from gateway.settings import Settings
from gateway.telemetry import new_request_id, request_id

# Our messages use a private proto package; the service name below is what goes on the wire.
SERVICE = "inference.GRPCInferenceService"


class InferenceServicer:
    """The v2 gRPC methods, each delegating to the DataPlane."""

    def __init__(self, plane: DataPlane, keys: ApiKeys) -> None:
        self.plane = plane
        self.keys = keys

    def _metadata(self, context: grpc.aio.ServicerContext) -> dict[str, str]:
        return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}

    def _wrap(
        self, fn: Callable[[Any, dict[str, str], Any], Awaitable[Any]], open_: bool = False
    ) -> Callable[..., Awaitable[Any]]:
        """`open_`: no API key needed (liveness and readiness, as on REST)."""

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            md = self._metadata(context)
            rid = md.get("x-request-id") or new_request_id()
            token = request_id.set(rid)
            try:
                if not open_:
                    self.keys.check(md.get("authorization"))
                if isinstance(request, Unparseable):
                    raise InvalidArgument(f"request is not a valid {request.kind} (cannot parse it, e.g. bad UTF-8)")
                return await fn(request, md, context)
            except GatewayError as exc:
                trailers = [("x-request-id", rid)] + ([("x-backend", exc.backend)] if exc.backend else [])
                context.set_trailing_metadata(tuple(trailers))
                await context.abort(grpc_code(exc), client_message(exc))
            finally:
                request_id.reset(token)

        return handler

    async def server_live(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.plane.live())

    async def server_ready(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def model_ready(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version or None, md, "grpc"))

    async def server_metadata(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ServerMetadataResponse:
        meta = self.plane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=list(meta.extensions))

    async def model_metadata(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ModelMetadataResponse:
        return metadata_response(self.plane.model_metadata(request.name, request.version or None))

    async def model_infer(
        self, request: pb.ModelInferRequest, md: dict[str, str], context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        start = time.perf_counter()
        result = await self.plane.infer(
            InferRequest(
                model=request.model_name,
                version=request.model_version or None,
                inputs=decode_request(request),
                outputs=requested_outputs(request),
                request_id=request_id.get(),
                headers=md,
                protocol="grpc",
                deadline_s=context.time_remaining(),
            )
        )
        response = encode_response(result, request.id)
        gateway_ms, upstream_ms = (time.perf_counter() - start) * 1000, result.upstream_s * 1000
        timing = f"gateway;dur={gateway_ms:.3f}, upstream;dur={upstream_ms:.3f}"
        context.set_trailing_metadata(
            (("x-backend", result.backend), ("server-timing", timing), ("x-request-id", request_id.get()))
        )
        return response

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler registering every method under the v2 service name."""

        def unary(fn: Any, req: Any, resp: Any, open_: bool = False) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(fn, open_),
                request_deserializer=parser(req),
                response_serializer=resp.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ServerLive": unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse, open_=True),
                "ServerReady": unary(self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse, open_=True),
                "ModelReady": unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
                "ServerMetadata": unary(self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse),
                "ModelMetadata": unary(self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
                "ModelInfer": unary(self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            },
        )


async def start_grpc_server(plane: DataPlane, keys: ApiKeys, settings: Settings) -> tuple[grpc.aio.Server, int]:
    """Start the v2 gRPC server on the running loop; returns it and its bound port."""
    limit = settings.limits.max_body_bytes
    options = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", 256 << 20),
        ("grpc.so_reuseport", 1),
    ]  # several worker processes share the port
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((InferenceServicer(plane, keys).handler(),))
    port = server.add_insecure_port(f"{settings.server.host}:{settings.server.grpc_port}")
    await server.start()
    return server, port
