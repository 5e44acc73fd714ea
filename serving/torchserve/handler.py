"""TorchServe handler for every twinserve model: batch-aware, TF-Serving-like JSON, raw float32 input.

Packed into each .mar beside `torch_nets.py` (architecture), `weights.pt` (state_dict) and
`model_meta.json` (name, input shape, output names). Serialization choice: an eager state_dict plus
the model's Python source, not TorchScript. A state_dict is a plain zip of tensors that torch 2.4
(the pytorch/torchserve:0.12.0 images) loads with `weights_only=True`, while TorchScript archives
written by torch 2.13 carry a newer format version that older runtimes refuse.

Request forms (one TorchServe request = one entry of the batch; all entries run in one forward):
  JSON  {"instances": [inst, ...]}              -> {"predictions": [{"logits": .., "probabilities": ..}, ..]}
  JSON  {"inputs": batch} / {"inputs": {"input": batch}} -> {"outputs": {"logits": .., "probabilities": ..}}
  raw   Content-Type application/octet-stream, or gRPC input key "input": little-endian float32 bytes
        of [n, *input_shape]                     -> the columnar JSON answer.
Bad input gets status 400 with {"code": 400, "type": "InvalidInput", "message": ...} for that entry only.

Under KServe (kserve-torchserve), TorchServe 0.12.0 wraps this handler in the request envelope named by
TS_SERVICE_ENVELOPE (ts/torch_handler/request_envelope/), which hands over the FIRST request only, unpacked:
  kserve    (protocol v1) the bare `instances` list [inst, ...]  -> [{"logits": .., "probabilities": ..}, ..];
            the envelope answers {"predictions": <that list>}, the same rows as TF Serving's row format.
  kservev2  (protocol v2) the `inputs` list [{name, shape, datatype, data (already reshaped)}]
            -> one array per input: the envelope names each answer after an input and flattens it, so only
            the first output (logits) fits; it comes back named like the input, shape [n * classes].
Under either envelope a bad request fails the whole call with 400 (PredictionException), and TorchServe must
batch 1 request at a time: the envelope drops every request after the first (deploy/k8s/kserve.py).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)

MAX_INSTANCES = 1024  # per request; a bigger batch is a client mistake, not a reason to exhaust memory
JSON_TYPES = ("application/json", "text/json")


class InvalidInputError(ValueError):
    """The request is malformed; the message names what is wrong."""


@dataclass
class LoadedModel:
    """A model ready for inference, with the metadata it was exported with."""

    module: torch.nn.Module
    name: str
    input_name: str
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    device: torch.device


def load_model(model_dir: str, device: torch.device) -> LoadedModel:
    """Load the architecture source, the state_dict and the metadata unpacked from a .mar."""
    with open(os.path.join(model_dir, "model_meta.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    spec = importlib.util.spec_from_file_location("twinserve_torch_nets", os.path.join(model_dir, "torch_nets.py"))
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import torch_nets.py from {model_dir}")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    module = nets.build(meta["name"], meta["num_classes"])
    state = torch.load(os.path.join(model_dir, "weights.pt"), map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    module.to(device).eval()
    return LoadedModel(
        module=module,
        name=meta["name"],
        input_name=meta["input_name"],
        input_shape=tuple(meta["input_shape"]),
        output_names=tuple(meta["output_names"]),
        device=device,
    )


def forward(model: LoadedModel, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Run one batch [n, *input_shape] float32 on the model's device; return logits and probabilities."""
    with torch.inference_mode():
        x = torch.from_numpy(batch).to(model.device, non_blocking=True)
        logits = model.module(x)
        probabilities = torch.softmax(logits, dim=1)
    return {"logits": logits.float().cpu().numpy(), "probabilities": probabilities.float().cpu().numpy()}


def decode(model: LoadedModel, row: dict[str, Any], content_type: str | None) -> tuple[np.ndarray, str]:
    """Turn one request into a float32 batch and the answer format ('row' or 'columnar')."""
    if model.input_name in row:  # gRPC: raw tensor bytes under the input's name
        return _raw(model, row[model.input_name]), "columnar"
    body = row.get("body", row.get("data"))
    if body is None:
        if row:  # TorchServe's frontend split a form-encoded body (curl -d without a Content-Type) into fields
            raise InvalidInputError(
                "form-encoded bodies are not accepted: send JSON with 'Content-Type: application/json' "
                "or raw float32 with 'Content-Type: application/octet-stream'"
            )
        raise InvalidInputError("empty request: send a JSON body or raw float32 bytes")
    if isinstance(body, (bytes, bytearray)):
        if content_type and content_type.split(";")[0].strip().lower() == "application/octet-stream":
            return _raw(model, body), "columnar"
        try:
            body = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidInputError(f"malformed JSON body: {error}") from None
    if not isinstance(body, dict):
        raise InvalidInputError('the JSON body must be an object with "instances" or "inputs"')
    if "instances" in body:
        return _array(model, body["instances"], "instances"), "row"
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            if set(inputs) != {model.input_name}:
                raise InvalidInputError(
                    f"inputs must have exactly one tensor named {model.input_name!r}, got {sorted(inputs)}"
                )
            inputs = inputs[model.input_name]
        return _array(model, inputs, "inputs"), "columnar"
    raise InvalidInputError(f'the JSON body needs "instances" or "inputs"; got keys {sorted(body)}')


def _raw(model: LoadedModel, data: bytes | bytearray) -> np.ndarray:
    per_instance = int(np.prod(model.input_shape)) * 4
    if not data or len(data) % per_instance:
        raise InvalidInputError(
            f"raw input of {len(data)} bytes is not a whole number of float32 instances of shape "
            f"{list(model.input_shape)} ({per_instance} bytes each)"
        )
    batch = np.frombuffer(bytes(data), dtype="<f4").reshape(-1, *model.input_shape)
    return _check_count(batch)


def _array(model: LoadedModel, value: Any, field: str) -> np.ndarray:
    try:
        batch = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(f"{field!r} must be a rectangular array of numbers (float32): {error}") from None
    if batch.ndim == 0 or tuple(batch.shape[1:]) != model.input_shape:
        raise InvalidInputError(
            f"{field!r} has shape {list(batch.shape)}; expected [n, {', '.join(map(str, model.input_shape))}]"
        )
    return _check_count(batch)


def _check_count(batch: np.ndarray) -> np.ndarray:
    if not 1 <= len(batch) <= MAX_INSTANCES:
        raise InvalidInputError(f"a request must hold 1 to {MAX_INSTANCES} instances, got {len(batch)}")
    return np.ascontiguousarray(batch)


def encode(outputs: dict[str, np.ndarray], form: str) -> str:
    """Answer in TF Serving's REST shapes: rows of dicts, or one dict of columns."""
    if form == "row":
        return json.dumps({"predictions": rows(outputs)})
    return json.dumps({"outputs": {name: array.tolist() for name, array in outputs.items()}})


def error_body(message: str) -> str:
    """TorchServe-style error JSON."""
    return json.dumps({"code": 400, "type": "InvalidInput", "message": message})


def envelope_form(data: list[Any]) -> str | None:
    """Which KServe envelope unpacked `data` ('kserve', 'kservev2'), or None for TorchServe's own request rows.

    TorchServe's rows are always dicts (body, form fields or gRPC inputs); the v1 envelope hands over
    instances (arrays), the v2 envelope tensor dicts whose `data` is already a nested list.
    """
    if not all(isinstance(item, dict) for item in data):
        return "kserve"
    if all({"name", "datatype", "shape", "data"} <= item.keys() and isinstance(item["data"], list) for item in data):
        return "kservev2"
    return None


def decode_v2_inputs(model: LoadedModel, tensors: list[dict[str, Any]]) -> np.ndarray:
    """The v2 envelope's input tensors as one float32 batch: exactly one FP32 tensor named like the model input."""
    names = [str(t["name"]) for t in tensors]
    if names != [model.input_name]:
        raise InvalidInputError(f"inputs must be exactly one tensor named {model.input_name!r}, got {names}")
    tensor = tensors[0]
    if tensor["datatype"] != "FP32":
        raise InvalidInputError(f"input {model.input_name!r} must be FP32, got {tensor['datatype']}")
    return _array(model, tensor["data"], model.input_name)


def rows(outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One dict of outputs per instance (TF Serving's row format)."""
    names = list(outputs)
    columns = [outputs[n].tolist() for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


class TwinHandler:
    """Batch-aware handler: every request in TorchServe's batch shares one forward pass on the device."""

    model: LoadedModel | None = None

    def handle_envelope(self, data: list[Any], form: str) -> list[Any]:
        """One request unpacked by KServe's envelope: instances (v1) or input tensors (v2)."""
        assert self.model is not None
        try:
            v1 = form == "kserve"
            batch = _array(self.model, data, "instances") if v1 else decode_v2_inputs(self.model, data)
        except InvalidInputError as error:
            # The envelope answers one request; its status is the whole call's.
            raise PredictionException(str(error), 400) from None
        outputs = forward(self.model, batch)
        if form == "kserve":
            return rows(outputs)
        return [outputs[self.model.output_names[0]]]  # a float32 array, so the envelope reports FP32

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        if torch.cuda.is_available() and gpu_id is not None:
            device = torch.device(f"cuda:{gpu_id}")
        else:
            device = torch.device("cpu")
        self.model = load_model(properties["model_dir"], device)
        logger.info("twinserve handler: %s loaded on %s", self.model.name, device)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[str]:
        """TorchServe's batch of request rows: one answer (JSON text) per row, bad rows answered 400 alone."""
        assert self.model is not None
        batches: list[np.ndarray] = []
        plan: list[tuple[int, int, str] | str] = []  # (start, stop, form) per request, or an error message
        offset = 0
        for index, row in enumerate(data):
            try:
                batch, form = decode(self.model, row, _header(context, index, "Content-Type"))
            except InvalidInputError as error:
                plan.append(str(error))
                continue
            batches.append(batch)
            plan.append((offset, offset + len(batch), form))
            offset += len(batch)
        outputs = forward(self.model, np.concatenate(batches)) if batches else {}
        answers: list[str] = []
        for index, entry in enumerate(plan):
            if isinstance(entry, str):
                context.set_response_status(400, entry, index)
                context.set_response_content_type(index, "application/json")
                answers.append(error_body(entry))
                continue
            start, stop, form = entry
            answers.append(encode({name: array[start:stop] for name, array in outputs.items()}, form))
            context.set_response_content_type(index, "application/json")
        return answers


def _header(context: Any, index: int, name: str) -> str | None:
    for key in (name, name.lower()):
        value = context.get_request_header(index, key)
        if value:
            return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
    return None


_service = TwinHandler()


def handle(data: list[Any] | None, context: Any) -> list[Any] | None:
    """TorchServe's entry point: the first call (data None) loads the model, later calls serve batches.

    A module-level function rather than a handler class: TorchServe's class discovery insists on
    exactly one class per handler module, and this module has several.
    """
    if _service.model is None:
        _service.initialize(context)
        return None
    if not data:  # only KServe's v1 envelope passes None after loading: the body had no "instances"
        raise PredictionException('the KServe v1 body needs "instances": a non-empty list of instances', 400)
    form = envelope_form(data)
    if form is not None:
        return _service.handle_envelope(data, form)
    return _service.handle(data, context)
