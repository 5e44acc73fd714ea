"""Gateway settings as environment variables: the one mapping from the gateway's Settings tree to `TWINSERVE_*`.

The gateway reads its settings with pydantic-settings (`gateway/settings.py` takes PREFIX and DELIMITER from
here); everything that starts a gateway (the supervisor, the reliability harness, the gateway benchmark, compose,
Kubernetes) writes them through `to_env`, so a nested setting has one spelling everywhere:
`{"backends": {"torchserve": {"rest_url": u}}}` -> `TWINSERVE_BACKENDS__TORCHSERVE__REST_URL=u`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.ports import Ports

PREFIX = "TWINSERVE_"
DELIMITER = "__"
NONE = "none"
"""How a None is spelled (the gateway's `env_parse_none_str`)."""


def variable(*path: str) -> str:
    """The variable of one setting: variable("server", "port") -> TWINSERVE_SERVER__PORT."""
    return PREFIX + DELIMITER.join(part.upper() for part in path)


def to_env(values: Mapping[str, Any], _path: tuple[str, ...] = ()) -> dict[str, str]:
    """Flatten nested settings into variables; lists go as JSON, booleans as true/false, None as `none`."""
    env: dict[str, str] = {}
    for key, value in values.items():
        path = (*_path, key)
        if isinstance(value, Mapping):
            env.update(to_env(value, path))
        elif value is None:
            env[variable(*path)] = NONE
        elif isinstance(value, bool):
            env[variable(*path)] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            env[variable(*path)] = json.dumps(list(value))
        else:
            env[variable(*path)] = str(value)
    return env


def for_stack(
    *,
    listen_host: str,
    client_host: str,
    ports: Ports,
    ts_key_file: Path,
    api_key_file: Path | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Settings that put a gateway on `ports`' gateway ports in front of that stack's TorchServe and TF side.

    `listen_host` is where the gateway binds; `client_host` how it reaches the servers (loopback for a wildcard
    bind). `api_key_file` is required when it listens beyond loopback (it refuses to start without one).
    """
    host = f"[{client_host}]" if ":" in client_host else client_host  # an IPv6 literal in a URL or target
    settings: dict[str, Any] = {
        "server": {
            "host": listen_host,
            "port": ports.gateway_rest,
            "grpc_port": ports.gateway_grpc,
            "workers": workers,
        },
        "backends": {
            "torchserve": {
                "rest_url": f"http://{host}:{ports.ts_inference}",
                "grpc_target": f"{host}:{ports.ts_grpc_inference}",
                "key_file": str(ts_key_file),
                "management_url": f"http://{host}:{ports.ts_management}",
            },
            "tfserving": {
                "rest_url": f"http://{host}:{ports.tf_rest}",
                "grpc_target": f"{host}:{ports.tf_grpc}",
            },
        },
    }
    if api_key_file is not None:
        settings["auth"] = {"api_key_file": str(api_key_file)}
    return settings
