"""KServe v1 REST: `POST {rest_url}/v1/models/{m}:predict` `{"instances": [...]}` -> `{"predictions": [...]}`.

What the gateway speaks to TorchServe on KServe's `kserve-torchserve` runtime (protocolVersion v1): KServe's
front end forwards the body to TorchServe, whose `kserve` envelope hands twinserve's handler the instances,
and the handler answers one dict of named outputs per instance (TF Serving's row format). KServe's front end
has no authentication, so no token is sent. TorchServe reports no signature: as with TorchServe itself, the
declared one is proved by a batch-of-1 probe, and the same probe is the health check.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gateway.backends.base import Backend, map_http_error, probe_inputs
from gateway.errors import UpstreamError
from gateway.metadata import ModelMetadata, TensorMeta
from gateway.settings import BackendSettings
from gateway.tensors import InferTensor, dumps_arrays


class KServeV1Backend(Backend):
    """One model's KServe v1 predictor (its own host); `name` is the stack it stands for."""

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.name = name
        self._probes: dict[str, tuple[str | None, list[InferTensor]]] = {}
        """Per model: the version and input that proved its signature, reused as health check."""

    async def _infer(
        self, model: str, version: str | None, inputs: list[InferTensor], timeout_s: float, request_id: str
    ) -> list[InferTensor]:
        if len(inputs) != 1:  # v1 instances are rows of one tensor
            raise UpstreamError(f"KServe v1 instances carry one input tensor, got {len(inputs)}", backend=self.name)
        body = dumps_arrays({"instances": inputs[0].data})
        reply = await self.http.request(
            "POST",
            f"{self.settings.rest_url}/v1/models/{model}:predict",
            body,
            # KServe forwards x-request-id to the predictor, so one id follows the request through both hops.
            {"Content-Type": "application/json", "X-Request-ID": request_id},
        )
        if reply.status != 200:
            raise map_http_error(self.name, reply.status, _error_text(reply.body))
        return rows_to_tensors(reply.json(), self.name)

    async def metadata(self, model: str, version: str | None, declared: ModelMetadata | None) -> ModelMetadata:
        """The declared signature, proved by a batch-of-1 probe (KServe v1 has no metadata call)."""
        if declared is None:
            raise UpstreamError("KServe v1 reports no signature; declare one in the route", backend=self.name)
        probe = probe_inputs(declared)
        outputs = await self.infer(model, version, probe, timeout_s=self.settings.timeout_s * 4, request_id="probe")
        self._probes[model] = (version, probe)
        got = tuple(TensorMeta(o.name, o.datatype, (-1, *o.shape[1:])) for o in outputs)
        return ModelMetadata(model, declared.versions, "kserve_v1", declared.inputs, got)

    async def healthy(self, model: str) -> bool:
        """The probe that proved the signature answers again; unproved (metadata not fetched yet) is unhealthy."""
        if model not in self._probes:
            return False
        version, probe = self._probes[model]
        try:
            await self.infer(model, version, probe, timeout_s=self.settings.timeout_s, request_id="health")
        except Exception:  # a health check reports, it never raises
            return False
        return True


def rows_to_tensors(answer: Any, backend: str) -> list[InferTensor]:
    """`{"predictions": [{name: value, ...}, ...]}` (one dict per instance) -> one FP32 tensor per name."""
    rows = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(rows, list) or not rows:
        raise UpstreamError("KServe v1 answer without a non-empty 'predictions' list", backend=backend)
    if not all(isinstance(row, dict) for row in rows):
        raise UpstreamError("KServe v1 predictions are not named outputs (one dict per instance)", backend=backend)
    names = list(rows[0])
    if any(list(row) != names for row in rows):
        raise UpstreamError("KServe v1 predictions name different outputs per instance", backend=backend)
    return [InferTensor.from_numpy(name, np.asarray([row[name] for row in rows], dtype=np.float32)) for name in names]


def _error_text(raw: bytes) -> str:
    """KServe's `{"error": ...}` (TorchServe's `{"message": ...}` when reached directly), else the raw text."""
    try:
        answer = json.loads(raw)
        return str(answer.get("error") or answer.get("message") or answer)
    except (ValueError, AttributeError):
        return raw[:200].decode("utf-8", "replace")
