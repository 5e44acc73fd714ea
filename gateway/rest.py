"""REST adapter: v2 endpoints, TF Serving's `:predict`, /metrics. Translates (codec_v2, codec_tf) and delegates only."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from gateway.backends.base import TF_REST_PREDICT
from gateway.codec_tf import decode_predict, encode_predict, forwardable, parse_predict
from gateway.codec_v2 import HEADER_LENGTH, decode_inputs, encode_response, metadata_json, parse_body, requested_outputs
from gateway.core import DataPlane, InferRequest, InferResult, RawBody
from gateway.telemetry import request_id
from gateway.tensors import InferTensor

router = APIRouter()
JSON = "application/json"


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
    request: Request, model: str, version: str | None, inputs: list[InferTensor], outputs: list[str] | None
) -> InferRequest:
    return InferRequest(model, version, inputs, outputs, request_id.get(), request.headers, "rest")


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


async def infer(request: Request) -> Response:
    """v2 inference with JSON tensors and the binary tensor extension."""
    start = time.perf_counter()
    model, version = request.path_params["model"], request.path_params.get("version")
    payload, tail = parse_body(await request.body(), request.headers.get(HEADER_LENGTH))
    inputs = decode_inputs(payload, tail)
    requested, binary, binary_default = requested_outputs(payload)
    result = await _plane(request).infer(_core_request(request, model, version, inputs, requested))
    head: dict[str, Any] = {"model_name": result.model, "model_version": result.version}
    if isinstance(payload.get("id"), str):
        head["id"] = payload["id"]
    body, header_length = encode_response(head, result.outputs, binary, binary_default, requested)
    if header_length is None:
        return Response(body, media_type=JSON, headers=_served_by(result, start))
    headers = {"Inference-Header-Content-Length": str(header_length), **_served_by(result, start)}
    return Response(body, media_type="application/octet-stream", headers=headers)


async def tf_predict(request: Request) -> Response:
    """TF Serving's REST predict (`instances` rows or `inputs` columns) for curl users."""
    start = time.perf_counter()
    model, version = request.path_params["model"], request.path_params.get("version")
    plane = _plane(request)
    meta = plane.model_metadata(model, version)
    body = await request.body()
    payload, same_bytes = parse_predict(body)
    inputs, form = decode_predict(payload, meta)
    req = _core_request(request, model, version, inputs, None)
    if same_bytes and forwardable(payload, meta):  # validated above; a TF side over REST may take the bytes as they are
        req.raw = RawBody(body, TF_REST_PREDICT)
    result = await plane.infer(req)
    answer = result.raw if result.raw is not None else encode_predict(result.outputs, form)
    return Response(answer, media_type=JSON, headers=_served_by(result, start))


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry (all workers in multiprocess mode)."""
    return Response(request.app.state.metrics.exposition(), media_type="text/plain; version=0.0.4")


INFERENCE_ROUTES = (
    ("/v2/models/{model}/infer", infer),
    ("/v2/models/{model}/versions/{version}/infer", infer),
    ("/v1/models/{model}:predict", tf_predict),
    ("/v1/models/{model}/versions/{version}:predict", tf_predict),
)


def mount(app: FastAPI) -> None:
    """Register the REST API on `app`; inference first, as plain Starlette routes.

    FastAPI's per-request parameter solving and its walk through an included router cost more CPU than the whole
    inference endpoint (python -m loadtest.gatewaybench.cpu); these endpoints read their two path parameters themselves.
    """
    for path, endpoint in INFERENCE_ROUTES:
        app.router.add_route(path, endpoint, methods=["POST"], include_in_schema=False)
    app.include_router(router)
