"""TF Serving client: REST `/v1/models/{m}[/versions/{v}]:predict` or gRPC `PredictionService/Predict`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from contract._generated import twinserve_tfserving_pb2 as tf_pb2
from gateway.backends.base import TF_REST_PREDICT, Backend, map_http_error
from gateway.errors import UpstreamError
from gateway.metadata import ModelMetadata, TensorMeta
from gateway.settings import TFServingSettings
from gateway.tensors import KEPT_FLAT, V2_TO_NUMPY, InferTensor, dumps_arrays, kept_flat, nested_shape

# Our messages live in a private proto package; only the method path and field numbers go on the wire.
PREDICTION_SERVICE = "/tensorflow.serving.PredictionService/"
MODEL_SERVICE = "/tensorflow.serving.ModelService/"
DEFAULT_SIG = "serving_default"  # what TF Serving runs for a REST body that names no signature

V2_TO_TF = {
    "FP32": tf_pb2.DT_FLOAT,
    "FP64": tf_pb2.DT_DOUBLE,
    "INT32": tf_pb2.DT_INT32,
    "UINT8": tf_pb2.DT_UINT8,
    "INT16": tf_pb2.DT_INT16,
    "INT8": tf_pb2.DT_INT8,
    "BYTES": tf_pb2.DT_STRING,
    "INT64": tf_pb2.DT_INT64,
    "BOOL": tf_pb2.DT_BOOL,
    "UINT16": tf_pb2.DT_UINT16,
    "FP16": tf_pb2.DT_HALF,
    "UINT32": tf_pb2.DT_UINT32,
    "UINT64": tf_pb2.DT_UINT64,
}
TF_TO_V2 = {v: k for k, v in V2_TO_TF.items()}
TF_NAME_TO_V2 = {tf_pb2.DataType.Name(v): k for k, v in V2_TO_TF.items()}


def to_tensor_proto(tensor: InferTensor) -> tf_pb2.TensorProto:
    """An InferTensor as a TensorProto (raw little-endian `tensor_content`; strings as `string_val`)."""
    proto = tf_pb2.TensorProto(dtype=V2_TO_TF[tensor.datatype])
    proto.tensor_shape.dim.extend(tf_pb2.TensorShapeProto.Dim(size=d) for d in tensor.shape)
    if tensor.datatype == "BYTES":
        proto.string_val.extend(tensor.data.reshape(-1).tolist())
    else:
        proto.tensor_content = np.ascontiguousarray(
            tensor.data, V2_TO_NUMPY[tensor.datatype].newbyteorder("<")
        ).tobytes()
    return proto


def from_tensor_proto(name: str, proto: tf_pb2.TensorProto) -> InferTensor:
    """A TensorProto (tensor_content or the typed *_val fields) as an InferTensor."""
    datatype = TF_TO_V2.get(proto.dtype)
    if datatype is None:
        raise UpstreamError(f"output {name!r} has unsupported dtype {proto.dtype}", backend="tfserving")
    shape = [d.size for d in proto.tensor_shape.dim]
    dtype = V2_TO_NUMPY[datatype]
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)
    else:
        field = {
            "FP32": "float_val",
            "FP64": "double_val",
            "INT64": "int64_val",
            "BOOL": "bool_val",
            "BYTES": "string_val",
            "UINT32": "uint32_val",
            "UINT64": "uint64_val",
            "FP16": "half_val",
        }
        values = list(getattr(proto, field.get(datatype, "int_val")))
        array = np.array(values, dtype=np.uint16).view(np.float16) if datatype == "FP16" else np.array(values, dtype)
        if array.size == 1 and int(np.prod(shape)) > 1:  # TF's shorthand: one value fills the tensor
            array = np.full(int(np.prod(shape)), array[0], dtype)
    return InferTensor(name, datatype, shape, array.reshape(shape))


def output_from_json(name: str, datatype: str, value: Any) -> InferTensor:
    """One output of TF's JSON answer (nested lists): a float output keeps TF's numbers as they came
    (InferTensor.flat, no array unless something needs one), any other becomes an array of its datatype."""
    if datatype in KEPT_FLAT:
        try:
            dims, leaves = nested_shape(value)
        except ValueError as exc:
            raise UpstreamError(f"output {name!r} is {exc}", backend="tfserving") from None
        kinds = set(map(type, leaves))
        if kinds <= {float, int}:
            return kept_flat(name, datatype, dims, leaves, kinds)
    return InferTensor.from_numpy(name, np.asarray(value, dtype=V2_TO_NUMPY[datatype]))


class TFServingBackend(Backend):
    """TF Serving (real or the native stand-in): the public REST and gRPC APIs."""

    name = "tfserving"
    settings: TFServingSettings

    def __init__(self, settings: TFServingSettings) -> None:
        super().__init__(settings)
        self._outputs: dict[str, dict[str, str]] = {}
        """Per model: output name -> v2 datatype from its signature (REST answers JSON numbers without types)."""

    async def start(self) -> None:
        await super().start()
        channel = self.grpc
        self._predict = channel.unary_unary(
            PREDICTION_SERVICE + "Predict",
            request_serializer=tf_pb2.PredictRequest.SerializeToString,
            response_deserializer=tf_pb2.PredictResponse.FromString,
        )
        self._metadata = channel.unary_unary(
            PREDICTION_SERVICE + "GetModelMetadata",
            request_serializer=tf_pb2.GetModelMetadataRequest.SerializeToString,
            response_deserializer=tf_pb2.GetModelMetadataResponse.FromString,
        )
        self._status = channel.unary_unary(
            MODEL_SERVICE + "GetModelStatus",
            request_serializer=tf_pb2.GetModelStatusRequest.SerializeToString,
            response_deserializer=tf_pb2.GetModelStatusResponse.FromString,
        )

    def _spec(self, model: str, version: str | None) -> tf_pb2.ModelSpec:
        spec = tf_pb2.ModelSpec(name=model, signature_name=self.settings.signature_name)
        if version:
            spec.version.value = int(version)
        return spec

    def _url(self, model: str, version: str | None, suffix: str) -> str:
        url = f"{self.settings.rest_url}/v1/models/{model}"
        return url + (f"/versions/{version}" if version else "") + suffix

    async def _infer(
        self, model: str, version: str | None, inputs: list[InferTensor], timeout_s: float, request_id: str
    ) -> list[InferTensor]:
        if self.settings.protocol == "grpc":
            request = tf_pb2.PredictRequest(model_spec=self._spec(model, version))
            for tensor in inputs:
                request.inputs[tensor.name].CopyFrom(to_tensor_proto(tensor))
            # timeout: the same deadline Backend.infer guards, told to the server (grpc-timeout) so it can give up too
            response = await self._predict(request, timeout=timeout_s, metadata=[("x-request-id", request_id)])
            return [from_tensor_proto(name, proto) for name, proto in sorted(response.outputs.items())]
        body = {"signature_name": self.settings.signature_name, "inputs": {t.name: t.nested() for t in inputs}}
        reply = await self.http.request(
            "POST",
            self._url(model, version, ":predict"),
            dumps_arrays(body),
            {"X-Request-ID": request_id, "Content-Type": "application/json"},
        )
        if reply.status != 200:
            raise map_http_error(self.name, reply.status, _error_text(reply.body))
        outputs = reply.json()["outputs"]
        datatypes = self._outputs.get(model, {})
        if not isinstance(outputs, dict):  # TF Serving drops the name when the signature has one output
            if len(datatypes) != 1:
                raise UpstreamError("single unnamed output and no one-output signature to name it", backend=self.name)
            outputs = {next(iter(datatypes)): outputs}
        return [output_from_json(name, datatypes.get(name, "FP32"), v) for name, v in sorted(outputs.items())]

    def forwards(self, model: str, wire: str) -> bool:
        """TF's own `:predict` bodies, over REST, when the signature is the one a body without a name gets."""
        rest = self.settings.protocol == "rest"
        return wire == TF_REST_PREDICT and rest and self.settings.signature_name == DEFAULT_SIG

    async def _forward(self, model: str, version: str | None, body: bytes, request_id: str) -> bytes:
        reply = await self.http.request(
            "POST",
            self._url(model, version, ":predict"),
            body,
            {"X-Request-ID": request_id, "Content-Type": "application/json"},
        )
        if reply.status != 200:
            raise map_http_error(self.name, reply.status, _error_text(reply.body))
        return reply.body

    async def metadata(self, model: str, version: str | None, declared: ModelMetadata | None) -> ModelMetadata:
        """The serving signature from GetModelMetadata (gRPC) or `/metadata` (REST)."""
        if self.settings.protocol == "grpc":
            request = tf_pb2.GetModelMetadataRequest(
                model_spec=self._spec(model, version), metadata_field=["signature_def"]
            )
            response = await self._metadata(request, timeout=self.settings.timeout_s)
            sigs = tf_pb2.SignatureDefMap.FromString(response.metadata["signature_def"].value)
            sig = sigs.signature_def[self.settings.signature_name]
            inputs = [_meta_from_proto(n, i) for n, i in sorted(sig.inputs.items())]
            outputs = [_meta_from_proto(n, i) for n, i in sorted(sig.outputs.items())]
            versions = (str(response.model_spec.version.value),)
        else:
            reply = await self.http.request(
                "GET", self._url(model, version, "/metadata"), timeout_s=self.settings.timeout_s
            )
            if reply.status != 200:
                raise map_http_error(self.name, reply.status, _error_text(reply.body))
            answer = reply.json()
            sig = answer["metadata"]["signature_def"]["signature_def"][self.settings.signature_name]
            inputs = [_meta_from_json(n, i) for n, i in sorted(sig["inputs"].items())]
            outputs = [_meta_from_json(n, i) for n, i in sorted(sig["outputs"].items())]
            versions = (str(answer["model_spec"]["version"]),)
        self._outputs[model] = {t.name: t.datatype for t in outputs if t.datatype in V2_TO_NUMPY}
        return ModelMetadata(model, versions, "tensorflow_serving", tuple(inputs), tuple(outputs))

    async def healthy(self, model: str) -> bool:
        """GetModelStatus (gRPC) or `GET /v1/models/{m}` (REST): some version of `model` is AVAILABLE."""
        try:
            if self.settings.protocol == "grpc":
                reply = await self._status(
                    tf_pb2.GetModelStatusRequest(model_spec=tf_pb2.ModelSpec(name=model)),
                    timeout=self.settings.timeout_s,
                )
                return any(s.state == tf_pb2.ModelVersionStatus.AVAILABLE for s in reply.model_version_status)
            reply = await self.http.request("GET", self._url(model, None, ""), timeout_s=self.settings.timeout_s)
            answer = reply.json()
            return any(s.get("state") == "AVAILABLE" for s in answer.get("model_version_status", []))
        except Exception:  # a health check reports, it never raises
            return False


def _error_text(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("error", raw[:200]))
    except (ValueError, AttributeError):
        return raw[:200].decode("utf-8", "replace")


def _meta_from_proto(name: str, info: tf_pb2.TensorInfo) -> TensorMeta:
    shape = (-1,) if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorMeta(name, TF_TO_V2.get(info.dtype, "UNKNOWN"), shape)


def _meta_from_json(name: str, info: dict[str, Any]) -> TensorMeta:
    shape_info = info.get("tensor_shape", {})
    shape = tuple(int(d["size"]) for d in shape_info.get("dim", []))
    return TensorMeta(name, TF_NAME_TO_V2.get(info.get("dtype", ""), "UNKNOWN"), shape)
