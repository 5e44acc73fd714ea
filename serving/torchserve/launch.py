"""TorchServe natively, the supervisor's plug-in: how it starts, its keys, when it is ready (config: launch_config)."""

from __future__ import annotations

import json
import os
import shlex
import stat
from collections.abc import Callable
from pathlib import Path

from contract import tskeys
from serving.torchserve.launch_config import TEMPLATE, render_config
from supervisor.errors import KeyFileError, PreflightError
from supervisor.layout import Layout
from supervisor.processes import Launch
from supervisor.readiness import ProbeResult, http
from supervisor.registered import write_samples
from supervisor.services import Service

NAME = "torchserve"
LABEL = "TorchServe"
# Access-log lines (our readiness probes) drown the worker tracebacks a failure report should show.
LOG_NOISE = (" ACCESS_LOG ",)
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Environment of TorchServe's Python workers, natively and in the image (a test checks they agree).

torch's OpenMP threads otherwise spin after every operator waiting for more work: measured on the 2-core
reference box, the digits worker burned 14.8 ms of CPU per request at 20 req/s (9 ms of it in an idle
OpenMP thread) against 1.7-2 ms with PASSIVE, starving the other processes and inviting the hypervisor to
throttle the VM. PASSIVE keeps torch's default thread count (as TF keeps its own), so resnet18 still runs
its convolutions on every core; only the idle waiting changes."""
# The frontend's worker sockets live in java.io.tmpdir as .ts.sock.<port>; Linux caps socket paths here.
_MAX_SOCKET_PATH = 107


def ports(layout: Layout) -> dict[str, int]:
    """The ports TorchServe binds, by role."""
    p = layout.ports
    return {
        "inference": p.ts_inference,
        "management": p.ts_management,
        "metrics": p.ts_metrics,
        "grpc_inference": p.ts_grpc_inference,
        "grpc_management": p.ts_grpc_management,
    }


def model_names(layout: Layout) -> list[str]:
    """Models TorchServe will load: one per `<artifacts>/torchserve/<model>.mar`."""
    return sorted(p.stem for p in (layout.artifacts / NAME).glob("*.mar"))


def prepare(layout: Layout, model_store: str | None = None) -> Launch:
    """Check artifacts, write `<run>/torchserve/config.properties`, return how to start TorchServe.

    `model_store`: serve the archives of another folder than `<artifacts>/torchserve` (e.g. repacked with other
    batching settings by `make bench-batching`).
    """
    store = Path(model_store) if model_store else layout.artifacts / NAME
    if not store.is_dir():
        raise PreflightError(f"{LABEL}: model store {store} is missing; run `make export` first")
    models = model_names(layout)
    if layout.require_models and not models:
        raise PreflightError(f"{LABEL}: no .mar archive in {store}; run `make export` first")
    write_samples(layout)
    missing = [str(layout.sample_file(m)) for m in models if not layout.sample_file(m).is_file()]
    if missing:
        raise PreflightError(f"{LABEL}: sample request(s) missing for the readiness check: {', '.join(missing)}")
    template = layout.repo_root / TEMPLATE
    if not template.is_file():
        raise PreflightError(f"{LABEL}: config template {template} is missing")
    work = layout.service_dir(NAME)
    tmp = work / "tmp"
    sock = tmp / ".ts.sock.65535"
    if len(str(sock)) > _MAX_SOCKET_PATH:
        raise PreflightError(
            f"{LABEL}: run directory path too long for worker sockets ({sock}); use a shorter --run-dir"
        )
    for d in (work, tmp, work / "logs"):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A key file left by a killed run would be read as current until TorchServe rewrites it.
    key_file(layout).unlink(missing_ok=True)
    config = work / "config.properties"
    config.write_text(render_config(template.read_text(), layout, store))
    return Launch(
        argv=[
            layout.python,
            "-m",
            "ts.model_server",
            "--start",
            "--foreground",
            "--ts-config",
            str(config),
            "--model-store",
            str(store),
            "--models",
            "all",
            "--no-config-snapshots",
        ],
        # TorchServe writes its key file into its working directory.
        cwd=work,
        env={
            "LOG_LOCATION": str(work / "logs"),
            "METRICS_LOCATION": str(work / "logs"),
            # TEMP -> java.io.tmpdir (worker sockets, unpacked models); TMPDIR -> the launcher's pid file,
            # so two stacks (a dev run and a test run) never share either.
            "TEMP": str(tmp),
            "TMPDIR": str(tmp),
            **WORKER_ENV,
        },
        # TS_* variables would override the generated file (enable_envvars_config=true), so none pass.
        drop_env_prefixes=("TS_",),
    )


def key_file(layout: Layout) -> Path:
    """Where TorchServe writes its keys for this run."""
    return layout.service_dir(NAME) / tskeys.FILE_NAME


def read_token(path: Path, kind: str = "inference") -> str:
    """The current `kind` key ("inference", "management" or "API"), read anew: keys expire and get renewed."""
    try:
        return tskeys.read_key(path, kind)
    except tskeys.KeyFileError as err:
        raise KeyFileError(f"{LABEL}: {err}") from None


def refresh_token(layout: Layout, kind: str = "inference", timeout: float = 10.0) -> str:
    """Ask TorchServe for a new `kind` key (token API on the management port, API key) and return it."""
    api_key = read_token(key_file(layout), "API")
    reply = http(
        layout.url(layout.ports.ts_management, f"/token?type={kind}"),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=timeout,
    )
    if reply.status != 200:
        raise KeyFileError(f"{LABEL} token API answered {reply.status}: {reply.text()}")
    return read_token(key_file(layout), kind)


def secure_key_file(layout: Layout) -> bool:
    """Make sure the key file is 0600; returns True if it had to be tightened."""
    path = key_file(layout)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)
        return True
    return False


def _auth(layout: Layout, kind: str = "inference") -> dict[str, str] | None:
    try:
        return {"Authorization": f"Bearer {read_token(key_file(layout), kind)}"}
    except KeyFileError:
        return None


def health(layout: Layout) -> ProbeResult:
    """`GET /ping` with the inference key answers Healthy."""
    headers = _auth(layout)
    if headers is None:
        return ProbeResult(False, f"waiting for {tskeys.FILE_NAME}")
    reply = http(layout.url(layout.ports.ts_inference, "/ping"), headers=headers)
    if reply.status == 200 and b"Healthy" in reply.body and b"Partial" not in reply.body:
        return ProbeResult(True, "ping: Healthy")
    return ProbeResult(False, f"/ping answered {reply.status}: {reply.text()}")


def _workers_ready(layout: Layout, model: str) -> ProbeResult:
    """At least one worker of `model` is READY (management describe; GET works with the model API off)."""
    reply = http(layout.url(layout.ports.ts_management, f"/models/{model}"), headers=_auth(layout, "management"))
    if reply.status != 200:
        return ProbeResult(False, f"GET /models/{model} answered {reply.status}: {reply.text()}")
    try:
        states = [w.get("status") for w in json.loads(reply.body)[0].get("workers", [])]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ProbeResult(False, f"GET /models/{model}: unexpected body {reply.text()}")
    if "READY" not in states:
        return ProbeResult(False, f"{model}: no worker READY yet (workers: {states or 'none'})")
    return ProbeResult(True, f"{model}: worker READY")


def readiness(layout: Layout) -> ProbeResult:
    """Healthy, every model has a READY worker, and every model answers its sample request with 200."""
    result = health(layout)
    if not result.ready:
        return result
    models = model_names(layout)
    headers = {**(_auth(layout) or {}), "Content-Type": "application/json"}
    for model in models:
        # Posting before a worker is READY would only park the request in the queue until it times out.
        result = _workers_ready(layout, model)
        if not result.ready:
            return result
        body = layout.sample_file(model).read_bytes()
        reply = http(
            layout.url(layout.ports.ts_inference, f"/predictions/{model}"), data=body, headers=headers, timeout=30.0
        )
        if reply.status != 200:
            return ProbeResult(False, f"POST /predictions/{model} answered {reply.status}: {reply.text()}")
    # The key file exists now: make sure it is private (TorchServe sets 0600 itself; umask 077 backs it up).
    tightened = "; key file tightened to 0600" if secure_key_file(layout) else ""
    return ProbeResult(True, f"ping Healthy; {len(models)} model(s) answered: {', '.join(models) or 'none'}{tightened}")


def cleanup(layout: Layout) -> None:
    """After a stop: delete the key file, whose keys died with the server (as `torchserve --stop` does)."""
    key_file(layout).unlink(missing_ok=True)


def usage(layout: Layout, show_path: Callable[[Path], str]) -> list[str]:
    """Copy-paste curl commands; the token is read from the key file by the shell, never printed."""
    token = f'$(python3 -c \'import json;print(json.load(open("{show_path(key_file(layout))}"))["inference"]["key"])\')'
    auth = f'-H "Authorization: Bearer {token}"'
    lines = [f"curl {auth} {layout.url(layout.ports.ts_inference, '/ping')}"]
    models = model_names(layout)
    if models:
        model = "digits" if "digits" in models else models[0]
        sample = shlex.quote(f"@{show_path(layout.sample_file(model))}")
        lines.append(
            f"curl {auth} -H 'Content-Type: application/json' -d {sample} "
            f"{layout.url(layout.ports.ts_inference, f'/predictions/{model}')}"
        )
    lines.append(f"curl {layout.url(layout.ports.ts_metrics, '/metrics')}")
    return lines


SERVICE = Service(
    name=NAME,
    label=LABEL,
    ports=ports,
    prepare=prepare,
    ready=readiness,
    health=health,
    usage=usage,
    cleanup=cleanup,
    log_skip=LOG_NOISE,
    options=("model_store",),
)
