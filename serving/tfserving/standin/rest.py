"""TF Serving's REST API (and the Prometheus endpoint) as a thin aiohttp adapter over the ModelManager."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST

from serving.tfserving.standin import MAX_MESSAGE_BYTES, METADATA_KEY, STANDIN_NOTICE
from serving.tfserving.standin.errors import InvalidArgumentError, PayloadTooLargeError, ServingError
from serving.tfserving.standin.manager import ModelManager, parse_version
from serving.tfserving.standin.rest_json import decode_object, decode_predict, encode_predict
from serving.tfserving.standin.servables import Servable

log = logging.getLogger("twinserve.tfserving.standin")

# The real server's URL grammar (http_rest_api_handler.cc), case-insensitive as there.
_SPEC = r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
_GET = re.compile(rf"/v1/models(?:/(?P<model>[^/:]+))?{_SPEC}(?P<metadata>/metadata)?", re.IGNORECASE)
_POST = re.compile(rf"/v1/models/(?P<model>[^/:]+){_SPEC}:(?P<verb>classify|regress|predict)", re.IGNORECASE)
_INLINE_CODEC_BYTES = 64 * 1024
"""JSON up to this size is decoded and encoded on the event loop; larger goes to a thread."""


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(doc).encode(), status=status, content_type="application/json")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure becomes TF Serving's `{"error": "..."}` with the mapped HTTP status."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ServingError as e:
        return _json({"error": e.message}, e.http_status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _json({"error": e.text or e.reason}, e.status)
    except Exception as e:
        log.exception("internal error on %s %s", request.method, request.path)
        return _json({"error": f"Internal: {type(e).__name__}: {e}"}, 500)


def metadata_doc(servable: Servable) -> dict[str, Any]:
    """GetModelMetadataResponse as the real REST API prints it, plus the stand-in's own key."""
    sig_defs = json_format.MessageToDict(
        servable.signature_defs, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {
        "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": sig_defs},
        METADATA_KEY: STANDIN_NOTICE,
    }


class _RestApi:
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    async def get(self, request: web.Request) -> web.Response:
        m = _GET.fullmatch(request.path)
        if m is None:
            raise InvalidArgumentError(f"Malformed request: GET {request.path}")
        if not m["model"]:
            raise InvalidArgumentError("Missing model name in request.")
        version = parse_version(m["version"]) if m["version"] else None
        if m["metadata"]:
            return _json(metadata_doc(self._manager.resolve(m["model"], version, m["label"])))
        versions = self._manager.versions(m["model"], version, m["label"])
        ok = {"error_code": "OK", "error_message": ""}
        statuses = [{"version": str(v), "state": "AVAILABLE", "status": ok} for v in versions]
        return _json({"model_version_status": statuses})

    async def post(self, request: web.Request) -> web.Response:
        m = _POST.fullmatch(request.path)
        if m is None:
            raise InvalidArgumentError(f"Malformed request: POST {request.path}")
        name, verb = m["model"], m["verb"].lower()
        started, status = time.perf_counter(), "UNKNOWN"
        try:
            response = await self._post(request, name, m["version"], m["label"], verb)
            status = "OK"
            return response
        except ServingError as e:
            status = e.code.name
            raise
        finally:
            if self._manager.is_served(name):  # bounded labels: never a client-chosen model name
                us = (time.perf_counter() - started) * 1e6
                self._manager.metrics.record_request(name, status, verb.capitalize(), "REST", us)

    async def _post(
        self, request: web.Request, name: str, version: str | None, label: str | None, verb: str
    ) -> web.Response:
        servable = self._manager.resolve(name, parse_version(version) if version else None, label)
        too_large = f"request body above the limit of {MAX_MESSAGE_BYTES} bytes"
        if request.content_length is not None and request.content_length > MAX_MESSAGE_BYTES:
            # Refuse before reading: a client announcing an oversized body gets its answer at once.
            raise PayloadTooLargeError(f"{too_large}: Content-Length is {request.content_length}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as e:  # a chunked body that outgrew the limit
            raise PayloadTooLargeError(too_large) from e
        loop = asyncio.get_running_loop()
        if verb != "predict":
            _, signature_name = decode_object(body)
            self._manager.check_method(servable, signature_name, verb)
        if len(body) <= _INLINE_CODEC_BYTES:
            parsed = decode_predict(body, servable)
        else:
            parsed = await loop.run_in_executor(None, decode_predict, body, servable)
        _, outputs = await self._manager.predict(servable, parsed.signature_name, parsed.inputs)
        if sum(v.size for v in outputs.values()) * 8 <= _INLINE_CODEC_BYTES:
            payload = encode_predict(outputs, parsed.row_format)
        else:
            payload = await loop.run_in_executor(None, encode_predict, outputs, parsed.row_format)
        return web.Response(body=payload, content_type="application/json")


def create_app(manager: ModelManager, prometheus_path: str | None) -> web.Application:
    """The REST application: TF Serving's /v1 API, plus Prometheus metrics if monitoring enables them."""
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES, middlewares=[_errors])
    api = _RestApi(manager)
    app.router.add_route("GET", "/v1/{tail:.*}", api.get)
    app.router.add_route("POST", "/v1/{tail:.*}", api.post)
    if prometheus_path is not None:

        async def prometheus(_: web.Request) -> web.Response:
            text = manager.metrics.exposition()
            return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get(prometheus_path, prometheus)
    return app
