"""Model metadata per backend, the cross-stack agreement check, and request validation against it."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from gateway.errors import InvalidArgument, NotFound, Unavailable
from gateway.tensors import InferTensor


@dataclass(frozen=True)
class TensorMeta:
    """Name, v2 datatype and shape (-1 = any size) of one model input or output."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMetadata:
    """What one backend says a model looks like."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]


def disagreement(a: ModelMetadata, b: ModelMetadata, a_name: str, b_name: str) -> str | None:
    """Why two signatures differ (input names, dtypes, shapes; output names and dtypes), or None."""
    for kind in ("inputs", "outputs"):
        ta = {t.name: t for t in getattr(a, kind)}
        tb = {t.name: t for t in getattr(b, kind)}
        if set(ta) != set(tb):
            return f"{kind} differ: {a_name} has {sorted(ta)}, {b_name} has {sorted(tb)}"
        for name, t in ta.items():
            u = tb[name]
            if t.datatype != u.datatype:
                return f"{kind[:-1]} {name!r}: {a_name} says {t.datatype}, {b_name} says {u.datatype}"
            if len(t.shape) != len(u.shape) or any(
                x != y and -1 not in (x, y) for x, y in zip(t.shape, u.shape, strict=True)
            ):
                return f"{kind[:-1]} {name!r}: {a_name} shape {list(t.shape)}, {b_name} shape {list(u.shape)}"
    return None


def validate_request(meta: ModelMetadata, inputs: list[InferTensor], outputs: Iterable[str] | None) -> None:
    """Raise InvalidArgument naming the tensor when a request does not fit the model's signature."""
    expected = {t.name: t for t in meta.inputs}
    seen: set[str] = set()
    for tensor in inputs:
        spec = expected.get(tensor.name)
        if spec is None:
            raise InvalidArgument(f"unknown input {tensor.name!r} for model {meta.name!r}; expected {sorted(expected)}")
        if tensor.name in seen:
            raise InvalidArgument(f"input {tensor.name!r} given twice")
        seen.add(tensor.name)
        if tensor.datatype != spec.datatype:
            raise InvalidArgument(f"input {tensor.name!r}: datatype {tensor.datatype}, expected {spec.datatype}")
        shape = list(tensor.shape)
        if len(shape) != len(spec.shape) or any(e not in (-1, g) for g, e in zip(shape, spec.shape, strict=True)):
            raise InvalidArgument(f"input {tensor.name!r}: shape {shape}, expected {list(spec.shape)} (-1: any)")
        if tensor.size != math.prod(shape):
            raise InvalidArgument(f"input {tensor.name!r}: data has {tensor.size} elements, shape {shape}")
    missing = sorted(set(expected) - seen)
    if missing:
        raise InvalidArgument(f"model {meta.name!r}: missing inputs {missing}")
    known = {t.name for t in meta.outputs}
    for name in outputs or ():
        if name not in known:
            raise InvalidArgument(f"unknown output {name!r} for model {meta.name!r}; expected {sorted(known)}")


@dataclass
class ModelState:
    """The gateway's view of one model: agreed metadata, and which backends can serve it."""

    name: str
    versions: tuple[str, ...]
    meta: ModelMetadata | None = None
    backends: dict[str, ModelMetadata] = field(default_factory=dict)
    reason: str = "not loaded yet"

    @property
    def ready(self) -> bool:
        """Ready when at least one backend answered and all that answered agree."""
        return self.meta is not None and bool(self.backends)


Fetcher = Callable[[str, str], Awaitable[ModelMetadata]]


class MetadataRegistry:
    """Fetches metadata for every routed model from every backend; marks disagreement as not ready."""

    def __init__(self, models: dict[str, tuple[str, ...]]) -> None:
        self.models = {name: ModelState(name, versions) for name, versions in models.items()}

    def get(self, model: str, version: str | None) -> ModelState:
        """The state of a model, or NotFound for an unknown model or version."""
        state = self.models.get(model)
        if state is None:
            raise NotFound(f"unknown model {model!r}; known models: {sorted(self.models)}")
        if version not in (None, "") and version not in state.versions:
            raise NotFound(f"model {model!r} has no version {version!r}; versions: {list(state.versions)}")
        return state

    def require_ready(self, model: str, version: str | None) -> ModelState:
        """The state of a ready model, else NotFound or Unavailable with the reason."""
        state = self.get(model, version)
        if not state.ready:
            raise Unavailable(f"model {model!r} is not ready: {state.reason}")
        return state

    def serves(self, model: str, backend: str) -> bool:
        """Whether `backend` is routed to for `model` now."""
        return backend in self.models[model].backends

    def incomplete(self, backends: Iterable[str]) -> bool:
        """Whether some model lacks one of `backends` (then its metadata is worth fetching again)."""
        wanted = set(backends)
        return any(set(state.backends) != wanted for state in self.models.values())

    def mark_unhealthy(self, model: str, backend: str) -> None:
        """Stop routing `model` to `backend` (its health probe failed) until a refresh finds it answering again."""
        state = self.models[model]
        if state.backends.pop(backend, None) is not None or not state.backends:
            state.reason = f"{backend}: health probe failed"

    async def refresh(self, fetchers: dict[str, Fetcher]) -> None:
        """Fetch every model from every backend and recompute agreement."""
        for state in self.models.values():
            answers: dict[str, ModelMetadata] = {}
            errors: list[str] = []
            for backend, fetch in fetchers.items():
                try:
                    answers[backend] = await fetch(state.name, state.versions[-1])
                except Exception as exc:  # a backend that cannot answer only loses this model
                    errors.append(f"{backend}: {getattr(exc, 'message', None) or exc!r}")
            self._update(state, answers, errors)

    @staticmethod
    def _update(state: ModelState, answers: dict[str, ModelMetadata], errors: list[str]) -> None:
        names = list(answers)
        for other in names[1:]:
            why = disagreement(answers[names[0]], answers[other], names[0], other)
            if why:
                state.meta, state.backends, state.reason = None, {}, f"stacks disagree: {why}"
                return
        state.backends = answers
        state.meta = answers[names[0]] if names else None
        state.reason = "; ".join(errors) if errors else ""
        if not names:
            state.reason = state.reason or "no backend answered"
