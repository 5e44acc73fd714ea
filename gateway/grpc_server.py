"""gRPC adapter: `inference.GRPCInferenceService` over the same DataPlane. Translates and delegates only."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from contract._generated import twinserve_kserve_pb2 as pb
from gateway.auth import ApiKeys
from gateway.core import DataPlane, InferRequest
from gateway.errors import GatewayError, InvalidArgument, client_message, grpc_code
from gateway.settings import Settings
from gateway.telemetry import new_request_id, request_id
from gateway.tensors import V2_TO_NUMPY, InferTensor, check_shape, decode_binary, encode_binary

# Our messages use a private proto package; the service name below is what goes on the wire.
SERVICE = "inference.GRPCInferenceService"
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def decode_request(request: pb.ModelInferRequest) -> list[InferTensor]:
    """Inputs from `raw_input_contents` (one per input, in order) or the typed `contents`."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; must be equal")
    tensors = []
    for i, item in enumerate(request.inputs):
        shape = check_shape(item.name, list(item.shape))  # proto dims are int64: negatives must be refused here
        if raw:
            tensors.append(decode_binary(item.name, item.datatype, shape, raw[i]))
            continue
        field = CONTENTS_FIELD.get(item.datatype)
        if field is None:
            raise InvalidArgument(f"input {item.name!r}: datatype {item.datatype!r} needs raw_input_contents")
        values = list(getattr(item.contents, field))
        count = math.prod(shape)  # exact: np.prod would wrap around on huge dims
        if len(values) != count:
            raise InvalidArgument(
                f"input {item.name!r}: shape {shape} needs {count} elements, contents.{field} has {len(values)}"
            )
        array = np.empty(count, dtype=object) if item.datatype == "BYTES" else None
        if array is not None:
            array[:] = values
        else:
            array = np.asarray(values, dtype=V2_TO_NUMPY[item.datatype])
        tensors.append(InferTensor(item.name, item.datatype, shape, array.reshape(shape)))
    return tensors


class Unparseable:
    """A request whose bytes are not a valid message (e.g. invalid UTF-8 in a string): the handler says 400."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _parser(message: Any) -> Callable[[bytes], Any]:
    """FromString that hands a decode failure to the handler (gRPC itself would answer INTERNAL)."""

    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except DecodeError:
            return Unparseable(message.DESCRIPTOR.name)

    return parse


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
        pin = md.get("backend") or None
        return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version or None, pin))

    async def server_metadata(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ServerMetadataResponse:
        meta = self.plane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=list(meta.extensions))

    async def model_metadata(self, request: Any, md: dict[str, str], ctx: Any) -> pb.ModelMetadataResponse:
        meta = self.plane.model_metadata(request.name, request.version or None)
        tm = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=list(meta.versions),
            platform=meta.platform,
            inputs=[tm(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in meta.inputs],
            outputs=[tm(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in meta.outputs],
        )

    async def model_infer(
        self, request: pb.ModelInferRequest, md: dict[str, str], context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        start = time.perf_counter()
        route = self.plane.routes.get(request.model_name)
        sticky = md.get(route.sticky_header.lower()) if route and route.sticky_header else None
        remaining = context.time_remaining()
        result = await self.plane.infer(
            InferRequest(
                model=request.model_name,
                version=request.model_version or None,
                inputs=decode_request(request),
                outputs=[o.name for o in request.outputs] or None,
                request_id=request_id.get(),
                pin=md.get("backend") or None,
                sticky=sticky,
                protocol="grpc",
                deadline_s=remaining,
            )
        )
        response = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=request.id)
        for tensor in result.outputs:
            response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            response.raw_output_contents.append(encode_binary(tensor))
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
                request_deserializer=_parser(req),
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
