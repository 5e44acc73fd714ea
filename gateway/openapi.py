"""The gateway's OpenAPI document: FastAPI's schema of the GET routes plus every inference route, described here.

The inference endpoints are plain Starlette routes (gateway/rest.py says why), which FastAPI leaves out of its
schema. Their bodies are described by the pydantic models below, used for documentation only: the endpoints keep
parsing bytes themselves, so no validation runs on the hot path.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from gateway.tensors import V2_TO_NUMPY

DATATYPE: JsonDict = {"enum": list(V2_TO_NUMPY)}


class _Doc(BaseModel):
    """Base of the documented bodies: keys other than these are ignored by the gateway."""

    model_config = ConfigDict(extra="allow")


class TensorInput(_Doc):
    """One input tensor: JSON `data` in row-major order, or `parameters.binary_data_size` bytes of the binary tail."""

    name: str
    shape: list[int] = Field(description="dimensions; their product is the number of elements in `data`")
    datatype: str = Field(description="v2 datatype", json_schema_extra=DATATYPE)
    data: list[Any] | None = Field(None, description="flat or nested row-major values")
    parameters: dict[str, Any] | None = Field(None, description="`binary_data_size`: bytes of the binary tail")


class TensorOutputRequest(_Doc):
    """An output the client wants, optionally as binary (`parameters.binary_data`)."""

    name: str
    parameters: dict[str, Any] | None = None


class InferRequestBody(_Doc):
    """Open Inference Protocol v2 inference request."""

    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="`binary_data_output`: every output as binary")
    inputs: list[TensorInput] = Field(min_length=1)
    outputs: list[TensorOutputRequest] | None = None


class TensorOutput(_Doc):
    """One output tensor."""

    name: str
    shape: list[int]
    datatype: str = Field(json_schema_extra=DATATYPE)
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferResponseBody(_Doc):
    """Open Inference Protocol v2 inference response."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[TensorOutput]


class PredictRequestBody(_Doc):
    """TF Serving's REST predict: `instances` (row format) or `inputs` (columnar format)."""

    signature_name: str | None = None
    instances: list[Any] | None = Field(None, min_length=1, description="one entry per example")
    inputs: Any = Field(None, description="one array, or an object of arrays keyed by input name")


class PredictResponseBody(_Doc):
    """`predictions` for the row format, `outputs` for the columnar one."""

    predictions: list[Any] | None = None
    outputs: Any = None


class ErrorBody(BaseModel):
    """Every error the gateway answers with."""

    error: str


ERRORS = {
    "400": "malformed or inconsistent with the model metadata",
    "401": "API key missing",
    "403": "API key not accepted",
    "404": "unknown model or version",
    "413": "body larger than the limit",
    "431": "request headers larger than the limit",
    "429": "backend queue full; see Retry-After",
    "502": "the backend failed",
    "503": "no backend can serve now (not ready, circuit open, draining); see Retry-After",
    "504": "deadline passed",
}
_BINARY_HEADER = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "binary tensor extension: length of the JSON header that precedes the binary tensors",
    "schema": {"type": "integer", "minimum": 0},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _choice(values: list[str]) -> dict[str, Any]:
    """A string, one of `values` when the gateway knows them."""
    return {"type": "string", "enum": values} if values else {"type": "string"}


def _path_params(path: str, models: dict[str, list[str]]) -> list[dict[str, Any]]:
    """`model` (one of the routed models) and `version` (one of their exposed versions) when the path has one."""
    params = [{"name": "model", "in": "path", "required": True, "schema": _choice(sorted(models))}]
    if "{version}" in path:
        versions = sorted({v for vs in models.values() for v in vs})
        params.append({"name": "version", "in": "path", "required": True, "schema": _choice(versions)})
    return params


def _operation(path: str, models: dict[str, list[str]]) -> dict[str, Any]:
    """The POST operation of one inference route."""
    v2, versioned = path.endswith("/infer"), "{version}" in path
    request, response = (InferRequestBody, InferResponseBody) if v2 else (PredictRequestBody, PredictResponseBody)
    content: dict[str, Any] = {"application/json": {"schema": _ref(request)}}
    params = _path_params(path, models)
    if v2:
        # binary tensor extension: a JSON header, then raw tensor bytes
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
        params.append(_BINARY_HEADER)
    answers = {"200": ("the outputs", response), **{status: (why, ErrorBody) for status, why in ERRORS.items()}}
    responses = {
        status: {"description": why, "content": {"application/json": {"schema": _ref(body)}}}
        for status, (why, body) in answers.items()
    }
    return {
        "summary": ("v2 inference" if v2 else "TF Serving REST predict") + (" (versioned)" if versioned else ""),
        "operationId": "infer" + ("_v2" if v2 else "_tf") + ("_version" if versioned else ""),
        "parameters": params,
        "requestBody": {"required": True, "content": content},
        "responses": responses,
    }


def build(app: FastAPI, inference_paths: list[str], models: dict[str, list[str]]) -> dict[str, Any]:
    """FastAPI's schema of the app's documented routes plus a POST operation for each inference path.

    `models`: the routed models and the versions each exposes, named in the path parameters.
    """
    spec = get_openapi(title="twinserve gateway", version="1", routes=app.routes)
    for path in inference_paths:
        spec["paths"].setdefault(path, {})["post"] = _operation(path, models)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    bodies = (InferRequestBody, InferResponseBody, PredictRequestBody, PredictResponseBody, ErrorBody)
    for body in bodies:
        schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[body.__name__] = schema
    return spec


def install(app: FastAPI, inference_paths: list[str], models: dict[str, list[str]]) -> None:
    """Make `app.openapi()` return the full document (built once) and serve it at `/openapi.json`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, inference_paths, models)
        return app.openapi_schema

    async def openapi_json(request: Request) -> Response:
        return Response(json.dumps(openapi()).encode(), media_type="application/json")

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False)
