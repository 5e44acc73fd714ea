"""The gateway natively, the supervisor's plug-in: `python -m gateway` in front of TorchServe and the TF side.

The gateway itself never imports this module (nor the supervisor): it is how the supervisor, the reliability
harness and the gateway benchmark start one, configured through `contract.gateway_env`.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from contract import gateway_env, v2
from serving.tfserving import launch as standin
from serving.torchserve import launch as torchserve
from supervisor.errors import PreflightError
from supervisor.layout import Layout
from supervisor.processes import Launch
from supervisor.readiness import ProbeResult, http
from supervisor.services import Service

NAME = "gateway"
LABEL = "Gateway"
PACKAGE = "gateway"
SAMPLE_MODEL = "digits"
STACKS = ("torchserve", "tfserving")


def ports(layout: Layout) -> dict[str, int]:
    """The ports the gateway binds, by role."""
    return {"rest": layout.ports.gateway_rest, "grpc": layout.ports.gateway_grpc}


def sample_file(layout: Layout, model: str = SAMPLE_MODEL) -> Path:
    """A v2 inference body for `model`, written into the run directory at `up` time."""
    return layout.run_dir / "samples" / f"{model}_v2.json"


def write_sample(layout: Layout, model: str = SAMPLE_MODEL, rows: int = 1) -> Path:
    """Write `run/samples/<model>_v2.json` from the first `rows` inputs of `artifacts/samples/<model>.npz`."""
    import numpy as np  # only `up` needs it, not `status` or `down`

    source = layout.artifacts / "samples" / f"{model}.npz"
    if not source.is_file():
        raise PreflightError(f"{LABEL}: {source} is missing; run `make export` first")
    with np.load(source) as data:
        x = np.asarray(data["inputs"][:rows], dtype=np.float32)
    path = sample_file(layout, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(v2.infer_json({"input": x}))
    return path


def keyed(layout: Layout) -> bool:
    """Whether the gateway needs an API key: it listens beyond loopback (it refuses to start without one)."""
    try:
        return not ipaddress.ip_address(layout.host).is_loopback
    except ValueError:
        return layout.host != "localhost"


def api_key_file(layout: Layout) -> Path:
    """The gateway's generated ingress API key (one line, mode 0600), used when it listens beyond loopback."""
    return layout.run_dir / NAME / "api_key"


def ensure_api_key(layout: Layout) -> Path:
    """Write a random API key into `api_key_file` unless one is there; private to this user either way."""
    path = api_key_file(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or not path.read_text().strip():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


def auth_headers(layout: Layout) -> dict[str, str]:
    """The Authorization header the gateway wants from the supervisor's own probes ({} on loopback)."""
    if not keyed(layout) or not api_key_file(layout).is_file():
        return {}
    return {"Authorization": f"Bearer {api_key_file(layout).read_text().strip()}"}


def environment(layout: Layout, **overrides: Any) -> dict[str, str]:
    """TWINSERVE_* settings pointing the gateway at this stack's ports and TorchServe's key file; `overrides`
    are nested settings on top (e.g. `server={"port": 9000}`)."""
    settings = gateway_env.for_stack(
        listen_host=layout.host,
        client_host=layout.client_host,
        ports=layout.ports,
        ts_key_file=torchserve.key_file(layout),
        api_key_file=api_key_file(layout) if keyed(layout) else None,
        # One worker natively: the reference machine's 2 cores also run both servers and the load generator.
        workers=1,
    )
    # Registered models (artifacts/registry, models.d) are routed beside routes.yaml's, as both stacks serve them.
    settings["registry_root"] = str(layout.registry_root)
    env = gateway_env.to_env(settings)
    env.update(gateway_env.to_env(overrides))
    return {**env, "PYTHONUNBUFFERED": "1"}


def prepare(layout: Layout, env: Mapping[str, str] | None = None) -> Launch:
    """Write the v2 sample body, return how to start the gateway (it waits for the backends by itself);
    `env`: TWINSERVE_* variables on top of the stack's (a harness's ports, log level, routes)."""
    if not (layout.repo_root / PACKAGE / "__main__.py").is_file():
        raise PreflightError(f"{LABEL}: {layout.repo_root / PACKAGE} is missing")
    write_sample(layout)
    if keyed(layout):
        ensure_api_key(layout)
    return Launch(argv=[layout.python, "-m", PACKAGE], cwd=layout.repo_root, env={**environment(layout), **(env or {})})


def models(layout: Layout) -> list[str]:
    """Models the gateway must have ready: every exported TorchServe archive."""
    return torchserve.model_names(layout) or standin.model_names(layout)


def readiness(layout: Layout) -> ProbeResult:
    """`GET /v2/health/ready` is 200 and every exported model is ready through the gateway on both stacks."""
    reply = http(layout.url(layout.ports.gateway_rest, "/v2/health/ready"), timeout=2.0)
    if reply.status != 200:
        return ProbeResult(False, f"/v2/health/ready answered {reply.status or reply.text()}")
    names = models(layout)
    for model in names:
        for stack in STACKS:  # the printed X-Backend examples must work, not only the routed default
            url = layout.url(layout.ports.gateway_rest, f"/v2/models/{model}/ready")
            reply = http(url, headers={"X-Backend": stack, **auth_headers(layout)}, timeout=2.0)
            if reply.status != 200:
                return ProbeResult(False, f"{model} on {stack}: /v2/models/{model}/ready answered {reply.status}")
    return ProbeResult(True, f"ready; {len(names)} model(s) ready on {' and '.join(STACKS)}: {', '.join(names)}")


def usage(layout: Layout, show_path: Callable[[Path], str]) -> list[str]:
    """curl lines for the v2 API through the gateway, one pinned to each stack, and the tritonclient way."""
    infer = layout.url(layout.ports.gateway_rest, f"/v2/models/{SAMPLE_MODEL}/infer")
    auth = ""
    if keyed(layout):  # the shell reads the key; it is never printed
        auth = f'-H "Authorization: Bearer $(cat {shlex.quote(show_path(api_key_file(layout)))})" '
    body = f"{auth}-H 'Content-Type: application/json' -d {shlex.quote('@' + show_path(sample_file(layout)))}"
    return [
        f"curl -s {layout.url(layout.ports.gateway_rest, '/v2/health/ready')} -o /dev/null -w '%{{http_code}}\\n'",
        f"curl -s {infer} {body}",
        f"curl -s {infer} {body} -H 'X-Backend: torchserve'",
        f"curl -s {infer} {body} -H 'X-Backend: tfserving'",
        f"curl -s {auth}{layout.url(layout.ports.gateway_rest, '/metrics')} | grep '^twinserve_gateway_requests_total'",
        f"# tritonclient: tritonclient.http.InferenceServerClient('{layout.client_host}:{layout.ports.gateway_rest}')"
        f" or tritonclient.grpc...('{layout.client_host}:{layout.ports.gateway_grpc}');"
        " pin a stack with headers={'X-Backend': 'tfserving'} (http) or {'backend': 'tfserving'} (grpc)",
    ]


SERVICE = Service(
    name=NAME,
    label=LABEL,
    ports=ports,
    prepare=prepare,
    ready=readiness,
    usage=usage,
    options=("env",),
)
