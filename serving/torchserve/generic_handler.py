"""TorchServe handler for registered models (issue 13): any named inputs and outputs, driven by signature.json.

Packed into a .mar with `signature.json` ({"inputs": [...], "outputs": [...], ...}: v2 names, datatypes FP32,
FP16, FP64, INT64, INT32, INT8, UINT8, BOOL, shapes with -1 for dynamic dims, batch first) and the torch model,
the first found of: `model.pt2` (torch.export), the archive's serialized file as TorchScript, or `spec.py` whose
`architecture()` (else `build()`) returns the module (then `weights.pt`, when packed, is its state_dict; this is
what `make add-model` packs, as torch 2.4 in older TorchServe images refuses torch 2.13's TorchScript).

Request forms (one TorchServe request = one entry of the batch; same-shaped entries share one forward):
  JSON {"instances": [inst, ...]}  inst: a value (one input) or {input: value} -> {"predictions": rows}
  JSON {"inputs": {input: batch}} or {"inputs": batch} (one input)            -> {"outputs": columns}
  raw  gRPC input keys = the input names, each little-endian bytes of its dtype (non-batch dims fixed), or
       REST application/octet-stream for a model with one input               -> the columnar answer.
Answers follow TF Serving's JSON: with one output, rows and columns are its bare values. A bad entry gets 400
with {"code": 400, "type": "InvalidInput", "message": ...} alone. It serves every model `make export` and
`make add-model` write, the built-in zoo included (models/zoo/*.py).

Under KServe (kserve-torchserve), TorchServe 0.12.0 wraps this handler in the request envelope named by
TS_SERVICE_ENVELOPE (ts/torch_handler/request_envelope/), which hands over the FIRST request only, unpacked:
  kserve    (protocol v1) the bare `instances` list -> rows; the envelope answers {"predictions": rows}, the same
            rows as TF Serving's row format.
  kservev2  (protocol v2) the `inputs` list [{name, shape, datatype, data (already reshaped)}], each datatype
            checked against the signature -> one array: the envelope names each answer after an input and
            flattens it, so only the first output fits; it comes back named like the input, shape [n * size].
Under either envelope a bad request fails the whole call with 400 (PredictionException), and TorchServe must
batch 1 request at a time: the envelope drops every request after the first (deploy/k8s/kserve.py).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)

MAX_INSTANCES = 1024  # per request; a bigger batch is a client mistake, not a reason to exhaust memory
DTYPES = {
    "FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
    "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
}  # fmt: skip
# Which JSON value kinds (numpy's after np.asarray) each dtype kind accepts: no silent float -> int truncation.
ACCEPTED_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}


class InvalidInputError(ValueError):
    """The request is malformed; the message names what is wrong."""


@dataclass(frozen=True)
class Tensor:
    """One signature tensor: name, numpy dtype, v2 datatype and shape (-1: any size)."""

    name: str
    dtype: np.dtype[Any]
    datatype: str
    shape: tuple[int, ...]

    def check(self, array: np.ndarray, where: str) -> np.ndarray:
        """`array` cast to this tensor's dtype, or InvalidInputError naming the tensor."""
        accepted = ACCEPTED_KINDS[self.dtype.kind]
        if array.dtype.kind not in accepted:
            got = {"U": "strings", "O": "ragged or mixed values", "b": "booleans"}.get(array.dtype.kind, array.dtype)
            raise InvalidInputError(f"{where}: input {self.name!r} is {self.datatype}; got {got}")
        if array.ndim != len(self.shape) or any(s not in (-1, d) for s, d in zip(self.shape, array.shape, strict=True)):
            raise InvalidInputError(
                f"{where}: input {self.name!r} has shape {list(array.shape)}; expected {list(self.shape)} (-1: any)"
            )
        if not 1 <= array.shape[0] <= MAX_INSTANCES:
            raise InvalidInputError(f"a request must hold 1 to {MAX_INSTANCES} instances, got {array.shape[0]}")
        return np.ascontiguousarray(array, dtype=self.dtype)


def read_signature(model_dir: str) -> tuple[list[Tensor], list[Tensor]]:
    """Inputs and outputs from signature.json."""
    with open(os.path.join(model_dir, "signature.json"), encoding="utf-8") as handle:
        doc = json.load(handle)

    def tensors(kind: str) -> list[Tensor]:
        return [Tensor(t["name"], np.dtype(DTYPES[t["datatype"]]), t["datatype"], tuple(t["shape"])) for t in doc[kind]]

    return tensors("inputs"), tensors("outputs")


def load_module(model_dir: str, serialized: str | None) -> torch.nn.Module:
    """The torch model packed in the .mar (torch.export, TorchScript or spec.py + weights), in eval mode."""
    pt2 = os.path.join(model_dir, "model.pt2")
    if os.path.isfile(pt2):
        return torch.export.load(pt2).module()
    spec_file = os.path.join(model_dir, "spec.py")
    if serialized and serialized.endswith((".pt", ".ts", ".torchscript")) and not os.path.isfile(spec_file):
        return torch.jit.load(os.path.join(model_dir, serialized), map_location="cpu").eval()
    spec = importlib.util.spec_from_file_location("twinserve_user_spec", spec_file)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"no model.pt2, TorchScript file or spec.py in {model_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    model = (getattr(module, "architecture", None) or module.build)()  # architecture() only constructs
    weights = os.path.join(model_dir, "weights.pt")
    if os.path.isfile(weights):
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


class SignatureHandler:
    """Batch-aware: the entries of TorchServe's batch with equal non-batch shapes share one forward pass."""

    def __init__(self) -> None:
        self.module: Any = None
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.device = torch.device("cpu")

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        if torch.cuda.is_available() and gpu_id is not None:
            self.device = torch.device(f"cuda:{gpu_id}")
        model_dir = properties["model_dir"]
        self.inputs, self.outputs = read_signature(model_dir)
        serialized = (getattr(context, "manifest", None) or {}).get("model", {}).get("serializedFile")
        self.module = load_module(model_dir, serialized).to(self.device)
        logger.info("twinserve generic handler: %s on %s", [t.name for t in self.inputs], self.device)

    def forward(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One forward pass; the answer's arrays carry the signature's output dtypes."""
        with torch.inference_mode():
            args = [torch.from_numpy(batch[t.name]).to(self.device) for t in self.inputs]
            result = self.module(*args)
        if isinstance(result, dict):
            values = [result[t.name] for t in self.outputs]
        else:
            values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(self.outputs):
            raise RuntimeError(f"the model returned {len(values)} outputs; signature.json names {len(self.outputs)}")
        return {
            t.name: v.detach().cpu().numpy().astype(t.dtype, copy=False)
            for t, v in zip(self.outputs, values, strict=True)
        }

    def decode(self, row: dict[str, Any], content_type: str | None) -> tuple[dict[str, np.ndarray], str]:
        """One request as input arrays and the answer form ('row' or 'columnar')."""
        names = [t.name for t in self.inputs]
        if names and set(names) <= set(row):  # gRPC: raw bytes per input name
            return {t.name: self._raw(t, row[t.name]) for t in self.inputs}, "columnar"
        body = row.get("body", row.get("data"))
        if body is None:
            raise InvalidInputError(
                f"send JSON with 'Content-Type: application/json', or raw tensors named {names} over gRPC"
                if row
                else "empty request"
            )
        if isinstance(body, (bytes, bytearray)):
            if (content_type or "").split(";")[0].strip().lower() == "application/octet-stream":
                if len(self.inputs) != 1:
                    raise InvalidInputError(f"raw bodies need a one-input model; this one has inputs {names}")
                return {names[0]: self._raw(self.inputs[0], body)}, "columnar"
            try:
                body = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise InvalidInputError(f"malformed JSON body: {error}") from None
        if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
            raise InvalidInputError('the JSON body must be an object with "instances" or "inputs" (not both)')
        if "instances" in body:
            return self.from_instances(body["instances"]), "row"
        columns = body["inputs"]
        if not isinstance(columns, dict):
            if len(names) != 1:
                raise InvalidInputError(f"'inputs' must be an object keyed by the input names {names}")
            columns = {names[0]: columns}
        return self.from_columns(columns, "inputs"), "columnar"

    def from_instances(self, instances: Any) -> dict[str, np.ndarray]:
        """TF Serving's row format: bare values for a one-input model, else one object per instance."""
        names = [t.name for t in self.inputs]
        if not isinstance(instances, list) or not instances:
            raise InvalidInputError("'instances' must be a non-empty list, one entry per instance")
        if all(isinstance(i, dict) for i in instances):
            for n, inst in enumerate(instances):
                if set(inst) != set(names):
                    raise InvalidInputError(f"instance {n} has keys {sorted(inst)}; expected {names}")
            return self.from_columns({k: [inst[k] for inst in instances] for k in names}, "instances")
        if len(names) != 1:
            raise InvalidInputError(f"each instance must be an object keyed by the input names {names}")
        return self.from_columns({names[0]: instances}, "instances")

    def from_columns(self, columns: dict[str, Any], field: str) -> dict[str, np.ndarray]:
        """Arrays per input name, checked against the signature."""
        names = [t.name for t in self.inputs]
        if set(columns) != set(names):
            raise InvalidInputError(f"{field!r} names inputs {sorted(columns)}; the model takes {names}")
        arrays = {}
        for t in self.inputs:
            try:
                arrays[t.name] = t.check(np.asarray(columns[t.name]), field)
            except ValueError as error:
                if isinstance(error, InvalidInputError):
                    raise
                raise InvalidInputError(f"{field!r}: input {t.name!r} is not a rectangular array") from None
        counts = {name: len(a) for name, a in arrays.items()}
        if len(set(counts.values())) > 1:
            raise InvalidInputError(f"inputs must hold the same number of instances, got {counts}")
        return arrays

    def _raw(self, t: Tensor, data: bytes | bytearray) -> np.ndarray:
        if -1 in t.shape[1:]:
            raise InvalidInputError(f"input {t.name!r} has dynamic dims {list(t.shape)}: send it as JSON")
        per = int(np.prod(t.shape[1:])) * t.dtype.itemsize
        if not data or len(data) % per:
            raise InvalidInputError(
                f"raw input {t.name!r} of {len(data)} bytes is not a whole number of {t.datatype} instances "
                f"of shape {list(t.shape[1:])} ({per} bytes each)"
            )
        array = np.frombuffer(bytes(data), dtype=t.dtype.newbyteorder("<")).reshape(-1, *t.shape[1:])
        return t.check(array.astype(t.dtype, copy=False), "raw")

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[str]:
        """TorchServe's batch: one JSON answer per entry; bad entries are answered 400 alone."""
        good: dict[int, tuple[dict[str, np.ndarray], str]] = {}
        answers: dict[int, str] = {}
        for index, row in enumerate(data):
            context.set_response_content_type(index, "application/json")
            try:
                good[index] = self.decode(row, _header(context, index, "Content-Type"))
            except InvalidInputError as error:
                context.set_response_status(400, str(error), index)
                answers[index] = json.dumps({"code": 400, "type": "InvalidInput", "message": str(error)})
        groups: dict[tuple[Any, ...], list[int]] = {}  # entries that can be concatenated along the batch dim
        for index, (arrays, _) in good.items():
            groups.setdefault(tuple(a.shape[1:] for a in arrays.values()), []).append(index)
        for members in groups.values():
            batch = {t.name: np.concatenate([good[i][0][t.name] for i in members]) for t in self.inputs}
            outputs, start = self.forward(batch), 0
            for index in members:
                arrays, form = good[index]
                stop = start + len(next(iter(arrays.values())))
                answers[index] = encode({k: v[start:stop] for k, v in outputs.items()}, form)
                start = stop
        return [answers[i] for i in range(len(data))]

    def handle_envelope(self, data: list[Any], v1: bool) -> list[Any]:
        """One request unpacked by KServe's envelope: v1 instances, or v2 tensors {name, datatype, data}."""
        try:
            if v1:
                batch = self.from_instances(data)
            else:
                declared = {t.name: t.datatype for t in self.inputs}
                for tensor in data:  # the v2 body says its datatype: INT64 data for an FP32 input is a mistake
                    want = declared.get(str(tensor["name"]))
                    if want is not None and tensor["datatype"] != want:
                        raise InvalidInputError(f"input {tensor['name']!r} must be {want}, got {tensor['datatype']}")
                batch = self.from_columns({str(t["name"]): t["data"] for t in data}, "inputs")
        except InvalidInputError as error:
            raise PredictionException(str(error), 400) from None  # the envelope's one request is the whole call
        outputs = self.forward(batch)
        return rows(outputs) if v1 else [outputs[self.outputs[0].name]]


def rows(outputs: dict[str, np.ndarray]) -> list[Any]:
    """TF Serving's row format: per instance a dict of outputs, or the bare value when there is one output."""
    if len(outputs) == 1:
        return next(iter(outputs.values())).tolist()
    columns = {name: array.tolist() for name, array in outputs.items()}
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def encode(outputs: dict[str, np.ndarray], form: str) -> str:
    """`{"predictions": rows}` or `{"outputs": columns}`, bare when there is one output (as TF Serving)."""
    if form == "row":
        return json.dumps({"predictions": rows(outputs)})
    columns = {name: array.tolist() for name, array in outputs.items()}
    return json.dumps({"outputs": next(iter(columns.values())) if len(columns) == 1 else columns})


def _header(context: Any, index: int, name: str) -> str | None:
    for key in (name, name.lower()):
        value = context.get_request_header(index, key)
        if value:
            return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
    return None


_service = SignatureHandler()


def handle(data: list[Any] | None, context: Any) -> list[Any] | None:
    """TorchServe's entry point: the first call (data None) loads the model, later calls serve batches."""
    if _service.module is None:
        _service.initialize(context)
        return None
    if not data:  # only KServe's v1 envelope passes None after loading: the body had no "instances"
        raise PredictionException('the KServe v1 body needs "instances": a non-empty list of instances', 400)
    if all(isinstance(item, dict) for item in data):
        if all(
            {"name", "datatype", "shape", "data"} <= item.keys() and isinstance(item["data"], list) for item in data
        ):
            return _service.handle_envelope(data, v1=False)
        if any("body" in item or "data" in item or _has_bytes(item) for item in data):
            return _service.handle(data, context)  # TorchServe's own rows: a body, or raw tensors over gRPC
    return _service.handle_envelope(data, v1=True)  # KServe v1: the instances (objects keyed by input name)


def _has_bytes(item: dict[str, Any]) -> bool:
    return any(isinstance(value, (bytes, bytearray)) for value in item.values())
