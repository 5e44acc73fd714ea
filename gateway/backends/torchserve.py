"""TorchServe client: REST `/predictions/{m}[/{v}]` or gRPC `InferenceAPIsService/Predictions`, token auth."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import empty_pb2

from contract import tskeys
from contract._generated import twinserve_torchserve_pb2 as ts_pb2
from gateway.backends.base import Backend, map_grpc_error, map_http_error, probe_inputs
from gateway.errors import UpstreamError
from gateway.metadata import ModelMetadata, TensorMeta
from gateway.settings import TorchServeSettings
from gateway.tensors import V2_TO_NUMPY, InferTensor, dumps_arrays

log = logging.getLogger(__name__)

# Our messages live in a private proto package; only the method path and field numbers go on the wire.
SERVICE = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/"


class TorchServeBackend(Backend):
    """TorchServe with our handler (docs/contracts.md): raw float32 in, columnar JSON out."""

    name = "torchserve"
    settings: TorchServeSettings

    def __init__(self, settings: TorchServeSettings) -> None:
        super().__init__(settings)
        self._key_file: tskeys.KeyFile | None = None
        self._probes: dict[str, tuple[str | None, list[InferTensor]]] = {}
        """Per model: the version and batch-of-1 input that proved its signature, reused as health check."""
        self._declared: dict[str, ModelMetadata] = {}
        """Per model: the declared signature, whose datatypes the answer's JSON numbers are read as."""

    async def start(self) -> None:
        await super().start()
        self._predict = self.grpc.unary_unary(
            SERVICE + "Predictions",
            request_serializer=ts_pb2.PredictionsRequest.SerializeToString,
            response_deserializer=ts_pb2.PredictionResponse.FromString,
        )
        self._ping_rpc = self.grpc.unary_unary(
            SERVICE + "Ping",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=ts_pb2.TorchServeHealthResponse.FromString,
        )

    def token(self, reload: bool = False, kind: str = "inference") -> str | None:
        """The `kind` key from TorchServe's key file (cached until the file changes); `reload` re-reads it after
        TorchServe refused the last one (keys expire and get renewed)."""
        path: Path | None = self.settings.key_file
        if path is None:
            return None
        if self._key_file is None or self._key_file.path != path:
            self._key_file = tskeys.KeyFile(path)
        try:
            return self._key_file.key(kind, reload=reload)
        except tskeys.KeyFileError:  # the message names a server path: keep it out of the client's answer
            raise UpstreamError(f"cannot read {kind} key from key file", backend=self.name) from None

    def _version(self, version: str | None) -> str:
        return self.settings.version_format.format(version=version) if version else ""

    async def _infer(
        self, model: str, version: str | None, inputs: list[InferTensor], timeout_s: float, request_id: str
    ) -> list[InferTensor]:
        declared = self._declared.get(model)
        grpc_call = self.settings.protocol == "grpc"
        fixed = declared is None or all(-1 not in t.shape[1:] for t in declared.inputs)
        raw = fixed and len(inputs) == 1 and inputs[0].datatype == "FP32"  # our handlers' fast path: raw float32
        keys: dict[str, bytes] = {}
        if raw:
            keys = {inputs[0].name: np.ascontiguousarray(inputs[0].data, dtype="<f4").tobytes()}
        elif grpc_call and fixed and declared is not None:
            # the generic handler reads raw little-endian tensors keyed by input name (fixed non-batch dims)
            keys = {t.name: np.ascontiguousarray(t.data, V2_TO_NUMPY[t.datatype].newbyteorder("<")).tobytes()
                    for t in inputs}  # fmt: skip
        if not keys:
            keys = {"body": dumps_arrays({"inputs": {t.name: t.data for t in inputs}})}
        for attempt in (0, 1):  # second attempt only after an auth failure, with a freshly read key
            token = self.token(reload=attempt == 1)
            if grpc_call:
                status, body = await self._grpc_call(model, version, keys, token, timeout_s, request_id)
            else:
                payload = next(iter(keys.values()))
                status, body = await self._rest_call(model, version, payload, raw, token, request_id)
            if not tskeys.rejected(status, body):
                break
            log.warning(
                "torchserve rejected the inference key; re-reading the key file",
                extra={"fields": {"model": model, "attempt": attempt}},
            )
        else:  # still rejected with the key just read: our credentials, never the client's mistake
            raise UpstreamError(
                f"inference key rejected (HTTP {status}) even after re-reading {self.settings.key_file}",
                backend=self.name,
            )
        if status != 200:
            raise map_http_error(self.name, status, body.decode("utf-8", "replace"))
        return _parse_outputs(json.loads(body), declared)

    async def _rest_call(
        self, model: str, version: str | None, payload: bytes, raw: bool, token: str | None, request_id: str
    ) -> tuple[int, bytes]:
        url = f"{self.settings.rest_url}/predictions/{model}"
        if version:
            url += f"/{self._version(version)}"
        headers = {"X-Request-ID": request_id}
        headers["Content-Type"] = "application/octet-stream" if raw else "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        reply = await self.http.request("POST", url, payload, headers)
        return reply.status, reply.body

    async def _grpc_call(
        self,
        model: str,
        version: str | None,
        keys: dict[str, bytes],
        token: str | None,
        timeout_s: float,
        request_id: str,
    ) -> tuple[int, bytes]:
        request = ts_pb2.PredictionsRequest(model_name=model, model_version=self._version(version), input=keys)
        metadata = [("x-request-id", request_id)]
        if token:
            metadata.append(("authorization", f"Bearer {token}"))
        try:
            # timeout: the same deadline Backend.infer guards, told to the server (grpc-timeout) so it can give up too
            response = await self._predict(request, timeout=timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as err:
            if tskeys.grpc_rejected(err.code()):
                return 401, b""
            raise map_grpc_error(self.name, err) from None
        return grpc_answer_status(response.prediction), response.prediction

    async def metadata(self, model: str, version: str | None, declared: ModelMetadata | None) -> ModelMetadata:
        """TorchServe reports no signature: take the declared one and prove it with a batch-of-1 probe.

        The probe asks for `version` through `version_format`, so a wrong mapping fails here, not later.
        """
        if declared is None:
            raise UpstreamError("TorchServe reports no signature; declare one in the route", backend=self.name)
        self._declared[model] = declared
        probe = probe_inputs(declared)
        outputs = await self.infer(model, version, probe, timeout_s=self.settings.timeout_s * 4, request_id="probe")
        self._probes[model] = (version, probe)
        got = tuple(TensorMeta(o.name, o.datatype, (-1, *o.shape[1:])) for o in outputs)
        return ModelMetadata(model, declared.versions, "pytorch_torchserve", declared.inputs, got)

    async def healthy(self, model: str) -> bool:
        """Some worker of the model is READY (`/ping` says Healthy even while a worker crash-loops).

        With a management URL the describe-model API tells, without running the model; otherwise the
        batch-of-1 probe that proved the signature runs again. Before metadata was fetched there is no
        probe yet: then `/ping` (REST) or `Ping` (gRPC) decides.
        """
        try:
            if self.settings.management_url:
                return await self._workers_ready(model)
            if model in self._probes:
                version, probe = self._probes[model]
                await self.infer(model, version, probe, timeout_s=self.settings.timeout_s, request_id="health")
                return True
            return await self._ping()
        except Exception:  # a health check reports, it never raises
            return False

    async def _workers_ready(self, model: str) -> bool:
        url = f"{self.settings.management_url}/models/{model}"
        for attempt in (0, 1):  # the second attempt re-reads a rejected (expired, renewed) key
            key = self.token(reload=attempt == 1, kind="management")
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            reply = await self.http.request("GET", url, headers=headers, timeout_s=self.settings.timeout_s)
            if tskeys.rejected(reply.status, reply.body):
                continue
            if reply.status != 200:
                return False
            workers = reply.json()[0].get("workers", [])
            return any(worker.get("status") == "READY" for worker in workers)
        return False

    async def _ping(self) -> bool:
        for attempt in (0, 1):  # the second attempt re-reads a rejected key
            token = self.token(reload=attempt == 1)
            if self.settings.protocol == "grpc":
                md = [("authorization", f"Bearer {token}")] if token else []
                try:
                    reply = await self._ping_rpc(empty_pb2.Empty(), timeout=self.settings.timeout_s, metadata=md)
                except grpc.aio.AioRpcError as err:
                    if tskeys.grpc_rejected(err.code()):
                        continue
                    return False
                return "healthy" in reply.health.lower()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            reply = await self.http.request(
                "GET", f"{self.settings.rest_url}/ping", headers=headers, timeout_s=self.settings.timeout_s
            )
            if tskeys.rejected(reply.status, reply.body):
                continue
            return reply.status == 200
        return False


def grpc_answer_status(prediction: bytes) -> int:
    """The HTTP-like status of a gRPC answer.

    TorchServe 0.12 drops the handler's per-request status on gRPC: a rejected request arrives as OK with
    the handler's error JSON (`{"code": 400, "type": ..., "message": ...}`), so the body decides.
    """
    if not prediction.startswith(b'{"code"'):
        return 200
    try:
        code = json.loads(prediction).get("code")
    except ValueError:
        return 200
    return code if isinstance(code, int) and 400 <= code < 600 else 200


def _parse_outputs(answer: Any, declared: ModelMetadata | None) -> list[InferTensor]:
    """Columnar `{"outputs": ...}` or row `{"predictions": [...]}` -> tensors with the declared datatypes.

    As TF Serving, a one-output signature answers bare values: they take the declared output's name.
    """
    names = [t.name for t in declared.outputs] if declared else []
    if isinstance(answer, dict) and "outputs" in answer:
        columns = answer["outputs"]
        if not isinstance(columns, dict) and len(names) == 1:
            columns = {names[0]: columns}
    elif isinstance(answer, dict) and isinstance(answer.get("predictions"), list):
        rows = answer["predictions"]
        if rows and not isinstance(rows[0], dict) and len(names) == 1:
            columns = {names[0]: rows}
        else:
            columns = {name: [row[name] for row in rows] for name in rows[0]} if rows else {}
    else:
        raise UpstreamError("unexpected answer: no 'outputs' or 'predictions'", backend="torchserve")
    if not isinstance(columns, dict):
        raise UpstreamError("unnamed outputs and no one-output signature to name them", backend="torchserve")
    datatypes = {t.name: t.datatype for t in declared.outputs} if declared else {}
    return [
        InferTensor.from_numpy(name, np.asarray(values, dtype=V2_TO_NUMPY[datatypes.get(name, "FP32")]))
        for name, values in columns.items()
    ]
