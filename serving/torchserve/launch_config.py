"""TorchServe's config.properties: read it, and rewrite the container's file for a native run."""

from __future__ import annotations

from pathlib import Path

from supervisor.errors import ConfigError
from supervisor.layout import Layout

TEMPLATE = Path("serving/torchserve/config.properties")
"""The one file the container uses as is and the native run rewrites (relative to the checkout)."""


def read_properties(text: str) -> dict[str, str]:
    """`key=value` lines of a properties file (comments `#`/`!` and blank lines skipped), as TorchServe's
    launcher reads them."""
    props = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def render_config(template: str, layout: Layout, model_store: Path) -> str:
    """The template with addresses, ports and model_store replaced in place (missing keys appended)."""
    p = layout.ports
    bind = f"[{layout.host}]" if ":" in layout.host else layout.host
    overrides = {
        "inference_address": f"http://{bind}:{p.ts_inference}",
        "management_address": f"http://{bind}:{p.ts_management}",
        "metrics_address": f"http://{bind}:{p.ts_metrics}",
        "grpc_inference_address": layout.host,
        "grpc_inference_port": str(p.ts_grpc_inference),
        "grpc_management_address": layout.host,
        "grpc_management_port": str(p.ts_grpc_management),
        "model_store": str(model_store),
    }
    lines, done = [], set()
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in overrides and "=" in line and not line.lstrip().startswith(("#", "!")):
            lines.append(f"{key}={overrides[key]}")
            done.add(key)
        else:
            lines.append(line)
    missing = [f"{k}={v}" for k, v in overrides.items() if k not in done]
    if missing:
        lines += ["", "# Added by supervisor for the native run.", *missing]
    rendered = "\n".join(lines) + "\n"
    check_invariants(read_properties(rendered))
    return rendered


def check_invariants(props: dict[str, str]) -> None:
    """Raise ConfigError unless token auth is on and the model management API is off."""
    if props.get("disable_token_authorization", "false").lower() != "false":
        raise ConfigError("TorchServe config must keep token auth on (disable_token_authorization=false)")
    if props.get("enable_model_api", "false").lower() != "false":
        raise ConfigError("TorchServe config must keep the model API off (enable_model_api=false)")
