"""REST adapter: v2 endpoints, TF Serving's `:predict`, /metrics. Translates (codec_v2, codec_tf) and delegates only."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from fastapi import APIRouter, FastAPI, Request, Response

from gateway.backends.base import TF_REST_PREDICT
from gateway.codec_tf import decode_predict, encode_predict, forwardable, parse_predict
from gateway.codec_v2 import HEADER_LENGTH, decode_inputs, encode_response, metadata_json, parse_body, requested_outputs
from gateway.core import DataPlane, InferRequest, InferResult, RawBody
from gateway.telemetry import request_id
from gateway.tensors import InferTensor

router = APIRouter()
JSON = "application/json"
OCTETS = "application/octet-stream"


def _plane(request: Request) -> DataPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body).encode(), status_code=status, media_type=JSON)


def _served_by(result: InferResult, start: float) -> dict[str, str]:
    """Headers saying who served it and how long each part took."""
    total_ms = (time.perf_counter() - start) * 1000
    timing = f"gateway;dur={total_ms:.3f}, upstream;dur={result.upstream_s * 1000:.3f}"
    return {"X-Backend": result.backend, "Server-Timing": timing}


def _core_request(
    headers: Mapping[str, str], model: str, version: str | None, inputs: list[InferTensor], outputs: list[str] | None
) -> InferRequest:
    return InferRequest(model, version, inputs, outputs, request_id.get(), headers, "rest")


def _health(request: Request, ok: bool) -> Response:
    """200, or 503 with Retry-After (not ready or draining: a balancer or client should come back later)."""
    if ok:
        return Response(status_code=200)
    return Response(status_code=503, headers={"Retry-After": request.app.state.retry_after_503})


@router.get("/v2/health/live")
async def live(request: Request) -> Response:
    """200 while the process runs."""
    return _health(request, _plane(request).live())


@router.get("/v2/health/ready")
async def ready(request: Request) -> Response:
    """200 when every routed model is ready, else 503."""
    return _health(request, _plane(request).ready())


@router.get("/v2")
async def server_metadata(request: Request) -> Response:
    """Gateway name, version and extensions."""
    meta = _plane(request).server_metadata()
    return _json({"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)})


@router.get("/v2/models/{model}")
@router.get("/v2/models/{model}/versions/{version}")
async def model_metadata(request: Request, model: str, version: str | None = None) -> Response:
    """The agreed model metadata (404 unknown, 503 not ready)."""
    return _json(metadata_json(_plane(request).model_metadata(model, version)))


@router.get("/v2/models/{model}/ready")
@router.get("/v2/models/{model}/versions/{version}/ready")
async def model_ready(request: Request, model: str, version: str | None = None) -> Response:
    """200 ready, 503 not ready, 404 unknown; with `X-Backend`, whether that stack serves it."""
    return _health(request, _plane(request).model_ready(model, version, request.headers, "rest"))


class Answer(NamedTuple):
    """An inference answer as HTTP sends it: body, media type, extra headers."""

    body: bytes
    media_type: str
    headers: dict[str, str]


async def infer_v2(
    plane: DataPlane, model: str, version: str | None, headers: Mapping[str, str], body: bytes, start: float
) -> Answer:
    """v2 inference with JSON tensors and the binary tensor extension (`headers`: lowercase names; `start`: when
    the request came in, for Server-Timing)."""
    payload, tail = parse_body(body, headers.get(HEADER_LENGTH))
    inputs = decode_inputs(payload, tail)
    requested, binary, binary_default = requested_outputs(payload)
    result = await plane.infer(_core_request(headers, model, version, inputs, requested))
    head: dict[str, Any] = {"model_name": result.model, "model_version": result.version}
    if isinstance(payload.get("id"), str):
        head["id"] = payload["id"]
    out, header_length = encode_response(head, result.outputs, binary, binary_default, requested)
    if header_length is None:
        return Answer(out, JSON, _served_by(result, start))
    return Answer(out, OCTETS, {"Inference-Header-Content-Length": str(header_length), **_served_by(result, start)})


async def predict_tf(
    plane: DataPlane, model: str, version: str | None, headers: Mapping[str, str], body: bytes, start: float
) -> Answer:
    """TF Serving's REST predict (`instances` rows or `inputs` columns) for curl users."""
    meta = plane.model_metadata(model, version)
    payload, same_bytes = parse_predict(body)
    inputs, form = decode_predict(payload, meta)
    req = _core_request(headers, model, version, inputs, None)
    if same_bytes and forwardable(payload, meta):  # validated above; a TF side over REST may take the bytes as they are
        req.raw = RawBody(body, TF_REST_PREDICT)
    result = await plane.infer(req)
    answer = result.raw if result.raw is not None else encode_predict(result.outputs, form)
    return Answer(answer, JSON, _served_by(result, start))


Handler = Callable[[DataPlane, str, "str | None", Mapping[str, str], bytes, float], Awaitable[Answer]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`handler` as a Starlette endpoint (gateway/fastpath.py serves these paths before Starlette does)."""

    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        params = request.path_params
        body = await request.body()
        answer = await handler(_plane(request), params["model"], params.get("version"), request.headers, body, start)
        return Response(answer.body, media_type=answer.media_type, headers=answer.headers)

    endpoint.__doc__ = handler.__doc__
    return endpoint


infer = _endpoint(infer_v2)
tf_predict = _endpoint(predict_tf)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry (all workers in multiprocess mode)."""
    return Response(request.app.state.metrics.exposition(), media_type="text/plain; version=0.0.4")


INFERENCE_HANDLERS: tuple[tuple[str, Handler], ...] = (
    ("/v2/models/{model}/infer", infer_v2),
    ("/v2/models/{model}/versions/{version}/infer", infer_v2),
    ("/v1/models/{model}:predict", predict_tf),
    ("/v1/models/{model}/versions/{version}:predict", predict_tf),
)
"""The inference paths and what answers them, served by gateway/fastpath.py ahead of FastAPI."""
INFERENCE_ROUTES = tuple((path, infer if handler is infer_v2 else tf_predict) for path, handler in INFERENCE_HANDLERS)
"""The same paths as Starlette routes: the fallback for what the fast path leaves (and the OpenAPI paths)."""


def mount(app: FastAPI) -> None:
    """Register the REST API on `app`; inference first, as plain Starlette routes.

    FastAPI's per-request parameter solving and its walk through an included router cost more CPU than the whole
    inference endpoint (python -m loadtest.gatewaybench.cpu); these endpoints read their two path parameters themselves.
    """
    for path, endpoint in INFERENCE_ROUTES:
        app.router.add_route(path, endpoint, methods=["POST"], include_in_schema=False)
    app.include_router(router)
