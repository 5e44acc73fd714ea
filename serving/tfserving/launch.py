"""The TF side natively, the supervisor's plug-in: the TF Serving stand-in (real TF Serving runs in a container)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from serving.tfserving import model_config
from supervisor.errors import PreflightError
from supervisor.layout import Layout
from supervisor.processes import Launch
from supervisor.readiness import ProbeResult, http
from supervisor.services import Service

NAME = "tfserving"
LABEL = "TF Serving stand-in"
KIND = "standin"
"""Which TF side runs, recorded in state.json so no number is mistaken for real TF Serving's."""
CONFIG_DIR = Path("serving/tfserving")
PACKAGE = "serving.tfserving.standin"


def ports(layout: Layout) -> dict[str, int]:
    """The ports the stand-in binds, by role."""
    return {"grpc": layout.ports.tf_grpc, "rest": layout.ports.tf_rest}


def _files(layout: Layout) -> dict[str, Path]:
    base = layout.repo_root / CONFIG_DIR
    return {
        "model config": base / "models.config",
        "monitoring config": base / "monitoring.config",
        "batching parameters": base / "batching_parameters.txt",
        "stand-in package": base / "standin" / "__main__.py",
    }


def model_names(layout: Layout) -> list[str]:
    """Models of serving/tfserving/models.config, then the registered ones (empty if the file is missing)."""
    static = _files(layout)["model config"]
    return model_config.model_names(layout.registry_root, static) if static.is_file() else []


def generated_config(layout: Layout) -> Path:
    """The models.config the stand-in reads: the zoo's plus the registered models, written at `up`."""
    return layout.service_dir(NAME) / "models.config"


def prepare(layout: Layout, batching_parameters_file: str | None = None) -> Launch:
    """Check config files and SavedModels, return how to start the stand-in.

    `batching_parameters_file`: another BatchingParameters file than serving/tfserving's (`make bench-batching`).
    """
    files = _files(layout)
    if batching_parameters_file:
        files["batching parameters"] = Path(batching_parameters_file)
    missing = [f"{what} ({path})" for what, path in files.items() if not path.is_file()]
    if missing:
        raise PreflightError(f"{LABEL}: missing {', '.join(missing)}")
    try:
        models = model_config.write(layout.registry_root, generated_config(layout), files["model config"])
    except ValueError as error:  # a broken registration names its file
        raise PreflightError(f"{LABEL}: {error}") from None
    if not models:
        raise PreflightError(f"{LABEL}: no model listed in {files['model config']}")
    root = layout.artifacts / NAME
    absent = [str(root / m) for m in models if not (root / m).is_dir()]
    if layout.require_models and absent:
        raise PreflightError(f"{LABEL}: SavedModel folder(s) missing: {', '.join(absent)}; run `make export` first")
    return Launch(
        argv=[
            layout.python,
            "-m",
            PACKAGE,
            f"--host={layout.host}",
            f"--port={layout.ports.tf_grpc}",
            f"--rest_api_port={layout.ports.tf_rest}",
            f"--model_config_file={generated_config(layout)}",
            f"--model_base_path_root={root}",
            f"--monitoring_config_file={files['monitoring config']}",
            "--enable_batching",
            f"--batching_parameters_file={files['batching parameters']}",
        ],
        # `-m serving...` resolves from the working directory, so run from the checkout.
        cwd=layout.repo_root,
        env={"PYTHONUNBUFFERED": "1"},
    )


def _available(layout: Layout, model: str) -> ProbeResult:
    reply = http(layout.url(layout.ports.tf_rest, f"/v1/models/{model}"))
    if reply.status != 200:
        return ProbeResult(False, f"GET /v1/models/{model} answered {reply.status}: {reply.text()}")
    try:
        states = [v.get("state") for v in json.loads(reply.body)["model_version_status"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult(False, f"GET /v1/models/{model}: unexpected body {reply.text()}")
    if "AVAILABLE" not in states:
        return ProbeResult(False, f"{model} versions are {states}, none AVAILABLE")
    return ProbeResult(True, f"{model} AVAILABLE")


def readiness(layout: Layout) -> ProbeResult:
    """Every model of models.config reports a version AVAILABLE."""
    models = model_names(layout)
    for model in models:
        result = _available(layout, model)
        if not result.ready:
            return result
    return ProbeResult(True, f"{len(models)} model(s) AVAILABLE: {', '.join(models)}")


def usage(layout: Layout, show_path: Callable[[Path], str]) -> list[str]:
    """Copy-paste curl commands for the stand-in."""
    models = model_names(layout)
    lines = []
    if models:
        model = "digits" if "digits" in models else models[0]
        rest = layout.url(layout.ports.tf_rest, f"/v1/models/{model}")
        lines += [f"curl {rest}", f"curl -d @{show_path(layout.sample_file(model))} {rest}:predict"]
    lines.append(f"curl {layout.url(layout.ports.tf_rest, '/monitoring/prometheus/metrics')}")
    return lines


SERVICE = Service(
    name=NAME,
    label=LABEL,
    ports=ports,
    prepare=prepare,
    ready=readiness,
    usage=usage,
    kind=KIND,
    options=("batching_parameters_file",),
)
