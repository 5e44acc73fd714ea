"""TF Serving's gRPC services (official stubs from tensorflow-serving-api), thin over the ModelManager."""

from __future__ import annotations

import time
from typing import Any, NoReturn, TypeAlias

import grpc
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.tfserving.standin import MAX_MESSAGE_BYTES, METADATA_KEY, STANDIN_NOTICE
from serving.tfserving.standin.errors import InvalidArgumentError, ServingError, UnimplementedError
from serving.tfserving.standin.manager import ModelManager
from serving.tfserving.standin.servables import tensor_from_proto

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


async def _abort(context: Context, error: ServingError) -> NoReturn:
    await context.abort(error.code, error.message)
    raise AssertionError("unreachable: abort raises")


def _spec(model_spec: Any) -> tuple[str, int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata; the rest is UNIMPLEMENTED."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    async def Predict(  # noqa: N802
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        """Run the signature on the request's tensors, honouring output_filter, version and version_label."""
        started, name = time.perf_counter(), request.model_spec.name
        try:
            servable = self._manager.resolve(*_spec(request.model_spec))
            inputs = {k: tensor_from_proto(k, v) for k, v in request.inputs.items()}
            sig, outputs = await self._manager.predict(
                servable, request.model_spec.signature_name, inputs, list(request.output_filter)
            )
        except ServingError as e:
            self._record(name, e.code.name, started)
            await _abort(context, e)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = sig.name
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        self._record(name, "OK", started)
        return response

    def _record(self, name: str, status: str, started: float) -> None:
        if self._manager.is_served(name):  # bounded labels: never a client-chosen model name
            us = (time.perf_counter() - started) * 1e6
            self._manager.metrics.record_request(name, status, "Predict", "GRPC", us)

    async def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """signature_def packed as the real server packs it, plus a StringValue naming the stand-in."""
        try:
            if not request.metadata_field:
                raise InvalidArgumentError("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise InvalidArgumentError(f"Metadata field {field} is not supported")
            servable = self._manager.resolve(*_spec(request.model_spec))
        except ServingError as e:
            await _abort(context, e)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(servable.signature_defs)
        response.metadata[METADATA_KEY].Pack(wrappers_pb2.StringValue(value=STANDIN_NOTICE))
        return response

    async def Classify(self, request: Any, context: Context) -> Any:  # noqa: N802
        """The real server's error for a predict-only signature; UNIMPLEMENTED otherwise."""
        await self._classify_or_regress(request, context, "classify")

    async def Regress(self, request: Any, context: Context) -> Any:  # noqa: N802
        """As Classify, for regression."""
        await self._classify_or_regress(request, context, "regress")

    async def _classify_or_regress(self, request: Any, context: Context, kind: str) -> NoReturn:
        try:
            servable = self._manager.resolve(*_spec(request.model_spec))
            self._manager.check_method(servable, request.model_spec.signature_name, kind)
        except ServingError as e:
            await _abort(context, e)
        raise AssertionError("unreachable: check_method always raises")

    async def MultiInference(self, request: Any, context: Context) -> Any:  # noqa: N802
        """Not implemented by the stand-in."""
        await _abort(context, UnimplementedError("the TF Serving stand-in does not implement MultiInference"))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus; config reload is UNIMPLEMENTED."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    async def GetModelStatus(  # noqa: N802
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Every served version (or the requested one) as AVAILABLE with status OK."""
        try:
            versions = self._manager.versions(*_spec(request.model_spec))
        except ServingError as e:
            await _abort(context, e)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add(version=version)
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    async def HandleReloadConfigRequest(self, request: Any, context: Context) -> Any:  # noqa: N802
        """Not implemented: the stand-in reads models.config once; restart it to change models."""
        await _abort(context, UnimplementedError("the TF Serving stand-in does not reload its config"))


def create_server(manager: ModelManager) -> grpc.aio.Server:
    """A grpc.aio server with both services and message limits large enough for resnet18 batches."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # gRPC sets SO_REUSEPORT by default: a second server would silently share the port.
            ("grpc.so_reuseport", 0),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    return server
