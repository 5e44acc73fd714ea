"""Registered models (schema "twinserve.model/1"): read and write the registration JSON.

Framework-free (no torch, no tensorflow, no numpy) so the gateway and the load tests may import it.
Built-ins are generated into `artifacts/registry/<name>.json` by `make export`; a user's models live in
`models.d/<name>/model.json` (git-ignored, survives `make clean`). Readers look in both, built-ins first.
The contract is written down in BYOM-INTERFACE.md; `validate` enforces it with errors that name the field.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "twinserve.model/1"
DATATYPES = ("FP32", "FP16", "INT64", "INT32", "BOOL")
CONVERTERS = ("onnx2tf", "keras-port")
BUILTIN_DIR = Path("artifacts") / "registry"
USER_DIR = Path("models.d")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# numpy dtype names per v2 datatype, as strings so this module needs no numpy.
NUMPY_DTYPES = {"FP32": "float32", "FP16": "float16", "INT64": "int64", "INT32": "int32", "BOOL": "bool"}


class RegistryError(ValueError):
    """A registration file (or a name) is wrong; the message names the file and the field."""


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output tensor: v2 datatype and shape, -1 for a dynamic dimension (dim 0 is batch)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def numpy_dtype(self) -> str:
        """The numpy dtype name of this datatype (e.g. "float32")."""
        return NUMPY_DTYPES[self.datatype]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Tolerance:
    """How close an answer must be to the torch reference: |a - r| <= atol + rtol * |r|."""

    atol: float = 1e-4
    rtol: float = 1e-3


@dataclass(frozen=True)
class Parity:
    """What the export proved: max |Δ| per output between the two stacks' artifacts, at these batches."""

    max_abs_diff: dict[str, float] = field(default_factory=dict)
    batches: tuple[int, ...] = ()


@dataclass(frozen=True)
class RegisteredModel:
    """One registration: what both stacks serve under `name`, and where its artifacts are."""

    name: str
    version: int
    builtin: bool
    spec: str
    description: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch: int
    tolerance: Tolerance
    slo_p99_ms: float
    converter: str
    layout_note: str
    artifacts: dict[str, str]
    reference: str
    parity: Parity
    source: str = ""
    """The file this registration was read from (empty when built in memory)."""

    def input(self, name: str) -> TensorSpec:
        """The input called `name`, or RegistryError naming the known inputs."""
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise RegistryError(f"model {self.name!r} has no input {name!r}; inputs: {[t.name for t in self.inputs]}")

    def to_json(self) -> dict[str, Any]:
        """The registration as the JSON object of schema twinserve.model/1."""
        return {
            "schema": SCHEMA,
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "spec": self.spec,
            "description": self.description,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "max_batch": self.max_batch,
            "tolerance": asdict(self.tolerance),
            "slo_p99_ms": self.slo_p99_ms,
            "converter": self.converter,
            "layout_note": self.layout_note,
            "artifacts": dict(self.artifacts),
            "reference": self.reference,
            "parity": {"max_abs_diff": dict(self.parity.max_abs_diff), "batches": list(self.parity.batches)},
        }


def check_name(name: str) -> str:
    """Return `name` if it can name a model (a folder, a URL segment, a TorchServe model), else RegistryError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError(
            f"model name {name!r} is not allowed: use lowercase letters, digits, '_' or '-', starting with a letter"
        )
    return name


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise RegistryError(f"{where}: missing field {key!r}")
    value = obj[key]
    # bool is an int in Python; a flag where a number belongs (or the reverse) is a mistake.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise RegistryError(f"{where}: field {key!r} must be {_kind_name(kind)}, not a boolean")
    if not isinstance(value, kind):
        raise RegistryError(f"{where}: field {key!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _tensors(items: Any, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(items, list) or not items:
        raise RegistryError(f"{where}: must be a non-empty list of tensors")
    tensors = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise RegistryError(f"{at}: must be an object with name, datatype, shape")
        name = _need(item, "name", str, at)
        datatype = _need(item, "datatype", str, at)
        if datatype not in DATATYPES:
            raise RegistryError(f"{at} ({name}): datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
        shape = _need(item, "shape", list, at)
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < -1 or d == 0 for d in shape):
            raise RegistryError(f"{at} ({name}): shape {shape} must be a non-empty list of positive ints or -1")
        if shape[0] != -1:
            raise RegistryError(f"{at} ({name}): shape {shape} must start with -1 (the dynamic batch dimension)")
        tensors.append(TensorSpec(name=name, datatype=datatype, shape=tuple(shape)))
    names = [t.name for t in tensors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RegistryError(f"{where}: duplicate tensor names {duplicates}")
    return tuple(tensors)


def from_json(obj: Any, source: str = "<memory>") -> RegisteredModel:
    """Validate one registration object and build it; RegistryError names the source and the field."""
    if not isinstance(obj, dict):
        raise RegistryError(f"{source}: a registration must be a JSON object")
    schema = obj.get("schema")
    if schema != SCHEMA:
        raise RegistryError(f"{source}: schema {schema!r} is not {SCHEMA!r}")
    name = check_name(_need(obj, "name", str, source))
    where = f"{source} ({name})"
    version = _need(obj, "version", int, where)
    if version < 1:
        raise RegistryError(f"{where}: version must be >= 1, got {version}")
    max_batch = _need(obj, "max_batch", int, where)
    if max_batch < 1:
        raise RegistryError(f"{where}: max_batch must be >= 1, got {max_batch}")
    tolerance = _need(obj, "tolerance", dict, where)
    atol = _need(tolerance, "atol", (int, float), f"{where} tolerance")
    rtol = _need(tolerance, "rtol", (int, float), f"{where} tolerance")
    if atol < 0 or rtol < 0:
        raise RegistryError(f"{where}: tolerance must be >= 0, got atol={atol} rtol={rtol}")
    slo = _need(obj, "slo_p99_ms", (int, float), where)
    if slo <= 0:
        raise RegistryError(f"{where}: slo_p99_ms must be > 0, got {slo}")
    converter = _need(obj, "converter", str, where)
    if converter not in CONVERTERS:
        raise RegistryError(f"{where}: converter {converter!r} is not one of {', '.join(CONVERTERS)}")
    artifacts = _need(obj, "artifacts", dict, where)
    for key in ("mar", "savedmodel"):
        _need(artifacts, key, str, f"{where} artifacts")
    parity = _need(obj, "parity", dict, where)
    diffs = _need(parity, "max_abs_diff", dict, f"{where} parity")
    batches = _need(parity, "batches", list, f"{where} parity")
    outputs = _tensors(obj.get("outputs"), f"{where} outputs")
    unknown = sorted(set(diffs) - {t.name for t in outputs})
    if unknown:
        raise RegistryError(f"{where}: parity names outputs {unknown} the model does not have")
    return RegisteredModel(
        name=name,
        version=version,
        builtin=_need(obj, "builtin", bool, where),
        spec=_need(obj, "spec", str, where),
        description=str(obj.get("description", "")),
        inputs=_tensors(obj.get("inputs"), f"{where} inputs"),
        outputs=outputs,
        max_batch=max_batch,
        tolerance=Tolerance(atol=float(atol), rtol=float(rtol)),
        slo_p99_ms=float(slo),
        converter=converter,
        layout_note=str(obj.get("layout_note", "")),
        artifacts={str(k): str(v) for k, v in artifacts.items()},
        reference=_need(obj, "reference", str, where),
        parity=Parity(
            max_abs_diff={str(k): float(v) for k, v in diffs.items()}, batches=tuple(int(b) for b in batches)
        ),
        source=source,
    )


def read(path: Path) -> RegisteredModel:
    """Read and validate one registration file."""
    try:
        obj = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc})") from None
    return from_json(obj, source=str(path))


def write(path: Path, model: RegisteredModel) -> None:
    """Write a registration atomically (a temp file renamed into place), validating it first."""
    payload = model.to_json()
    from_json(payload, source=str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def builtin_path(repo_root: Path, name: str) -> Path:
    """Where the generated registration of built-in `name` lives."""
    return Path(repo_root) / BUILTIN_DIR / f"{name}.json"


def user_path(repo_root: Path, name: str) -> Path:
    """Where the registration of user model `name` lives."""
    return Path(repo_root) / USER_DIR / name / "model.json"


def load_all(repo_root: Path | str = ".") -> dict[str, RegisteredModel]:
    """Every registered model: built-ins (artifacts/registry/*.json), then user models (models.d/*/model.json).

    A user registration whose name is a built-in's, or whose file name differs from its `name`, is an error:
    add-model refuses collisions, so finding one means a file was edited by hand.
    """
    root = Path(repo_root)
    found: dict[str, RegisteredModel] = {}
    for path in sorted((root / BUILTIN_DIR).glob("*.json")):
        model = read(path)
        if model.name != path.stem:
            raise RegistryError(f"{path}: names model {model.name!r} but the file is named {path.stem!r}")
        found[model.name] = model
    for path in sorted((root / USER_DIR).glob("*/model.json")):
        model = read(path)
        if model.name != path.parent.name:
            raise RegistryError(f"{path}: names model {model.name!r} but its folder is {path.parent.name!r}")
        if model.name in found:
            raise RegistryError(f"{path}: model {model.name!r} collides with {found[model.name].source}")
        found[model.name] = model
    return found


def get(name: str, repo_root: Path | str = ".") -> RegisteredModel:
    """The registration of `name`, or RegistryError naming the registered models."""
    models = load_all(repo_root)
    try:
        return models[name]
    except KeyError:
        known = ", ".join(sorted(models)) or "none"
        raise RegistryError(f"no registered model {name!r}; registered: {known}") from None
