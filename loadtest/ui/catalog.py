"""The targets the web UI offers: one per framework, protocol, path and served model, each with a readable name.

The stack comes from run/state.json (native) or compose's service names, the models from the exported
artifacts (`manifest.json`, those with reference samples), so a model the user added appears without a code
change. The launcher passes its choices to Locust's processes (master and workers alike) in the environment,
because Locust imports the locustfile before it parses any option: every process builds the same classes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loadtest.stack import StackInfo, discover
from loadtest.targets import Target

ENV_STACK = "TWINSERVE_STACK"
ENV_STATE = "TWINSERVE_STATE"
ENV_ARTIFACTS = "TWINSERVE_ARTIFACTS"
ENV_MODELS = "TWINSERVE_MODELS"
DEFAULT_TARGET = "torchserve-rest-direct:digits"
"""Preselected in the class picker: the simplest path to the smallest model."""
FRAMEWORK_NAMES = {"torchserve": "TorchServe", "tfserving": "TF Serving"}


class CatalogError(RuntimeError):
    """No target can be offered; the message says what to do."""


def label(t: Target, stand_in: bool = False) -> str:
    """'TorchServe gRPC via gateway · digits': the class name the picker shows; the TF side's says
    'TF Serving (stand-in)' whenever the stand-in serves it, so no UI run passes for TF Serving's."""
    how = "via gateway" if t.path == "gateway" else "direct"
    fw = FRAMEWORK_NAMES[t.framework] + (" (stand-in)" if stand_in and t.framework == "tfserving" else "")
    return f"{fw} {t.protocol.upper() if t.protocol == 'rest' else 'gRPC'} {how} · {t.model}"


def served_models(artifacts: Path) -> list[str]:
    """Models in `<artifacts>/manifest.json` that have reference samples (every answer is checked against them);
    digits first, then by name."""
    manifest = artifacts / "manifest.json"
    if not manifest.is_file():
        raise CatalogError(f"{manifest} is missing: run `make export` (or `make up`) first")
    models = json.loads(manifest.read_text(encoding="utf-8")).get("models", {})
    usable = [m for m in models if (artifacts / "samples" / f"{m}.npz").is_file()]
    if not usable:
        raise CatalogError(f"no model in {manifest} has reference samples in {artifacts / 'samples'}: `make export`")
    return sorted(usable, key=lambda m: (m != "digits", m))


@dataclass(frozen=True)
class Catalog:
    """The running stack, where its artifacts are, and every target it can serve (in picker order)."""

    stack: StackInfo
    artifacts: Path
    targets: tuple[Target, ...]

    def label_of(self, t: Target) -> str:
        """The class name of `t` on this stack (with the stand-in named)."""
        return label(t, self.stack.tf_side != "real")

    @property
    def default(self) -> Target:
        """The preselected target: DEFAULT_TARGET when offered, else the first."""
        return next((t for t in self.targets if t.id == DEFAULT_TARGET), self.targets[0])


def _artifacts_of(stack: StackInfo, fallback: Path) -> Path:
    """The artifacts the native stack serves (state.json records them), else `fallback`."""
    if stack.state_file is not None and stack.state_file.is_file():
        recorded = json.loads(stack.state_file.read_text(encoding="utf-8")).get("artifacts")
        if recorded and Path(recorded).is_dir():
            return Path(recorded)
    return fallback


def load(kind: str, state: Path, artifacts: Path, models: list[str] | None = None) -> Catalog:
    """Discover the stack and its models; CatalogError when there is nothing to offer."""
    try:
        stack = discover(kind, state)
    except FileNotFoundError:
        raise CatalogError(f"no running stack ({state} does not exist): run `make up` first") from None
    except RuntimeError as err:
        raise CatalogError(f"no running stack: {err}") from None
    arts = _artifacts_of(stack, artifacts)
    names = served_models(arts)
    if models:
        unknown = sorted(set(models) - set(names))
        if unknown:
            raise CatalogError(f"model(s) {', '.join(unknown)} not served here; served: {', '.join(names)}")
        names = [m for m in names if m in models]
    targets = tuple(stack.targets(names))
    if not targets:
        raise CatalogError("the running stack serves no target: run `make up` first")
    return Catalog(stack, arts, targets)


def from_environment(environ: Mapping[str, str] | None = None) -> Catalog:
    """The catalog the launcher chose (TWINSERVE_* variables; defaults: auto, run/state.json, artifacts)."""
    env = os.environ if environ is None else environ
    models = [m for m in env.get(ENV_MODELS, "").split(",") if m]
    return load(
        env.get(ENV_STACK, "auto"),
        Path(env.get(ENV_STATE, "run/state.json")),
        Path(env.get(ENV_ARTIFACTS, "artifacts")),
        models or None,
    )


def environment_for(kind: str, state: Path, artifacts: Path, models: list[str] | None) -> dict[str, str]:
    """The TWINSERVE_* variables `from_environment` reads (what the launcher and compose set)."""
    out = {ENV_STACK: kind, ENV_STATE: str(state), ENV_ARTIFACTS: str(artifacts)}
    if models:
        out[ENV_MODELS] = ",".join(models)
    return out
