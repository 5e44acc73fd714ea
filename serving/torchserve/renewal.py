"""TorchServe key renewal natively: the same `deploy/torchserve/ts_keys.py rotate` loop the container runs.

TorchServe never renews a key itself: once `token_expiration_min` passes, every client is refused for
good. This service asks TorchServe's token API (with the non-expiring API key) for fresh inference and
management keys every half lifetime; TorchServe rewrites its key file and clients re-read it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from serving.torchserve import launch as torchserve
from supervisor.errors import PreflightError
from supervisor.layout import Layout
from supervisor.processes import Launch
from supervisor.readiness import ProbeResult
from supervisor.services import Service

NAME = "torchserve-keys"
LABEL = "TorchServe key renewal"
SCRIPT = Path("deploy/torchserve/ts_keys.py")


def ports(layout: Layout) -> dict[str, int]:
    """Binds nothing: it only calls TorchServe's management port."""
    return {}


def config_file(layout: Layout) -> Path:
    """The TorchServe config the supervisor generated for this run (addresses, token lifetime)."""
    return layout.service_dir(torchserve.NAME) / "config.properties"


def prepare(layout: Layout) -> Launch:
    """`python deploy/torchserve/ts_keys.py rotate <key file> <generated config>`."""
    script = layout.repo_root / SCRIPT
    if not script.is_file():
        raise PreflightError(f"{LABEL}: {script} is missing")
    argv = [sys.executable, str(script), "rotate", str(torchserve.key_file(layout)), str(config_file(layout))]
    work = layout.service_dir(NAME)
    work.mkdir(parents=True, exist_ok=True)
    # TS_* variables would override the generated config inside ts_keys.py, as they would in TorchServe.
    # The script imports the checkout's `contract` package, as it does from beside itself in the image.
    return Launch(argv=argv, cwd=work, env={"PYTHONPATH": str(layout.repo_root)}, drop_env_prefixes=("TS_",))


def readiness(layout: Layout) -> ProbeResult:
    """Ready once TorchServe has written the key file the loop renews."""
    path = torchserve.key_file(layout)
    if path.is_file():
        return ProbeResult(True, f"renewing the keys in {path.name} every half token lifetime")
    return ProbeResult(False, f"waiting for {path.name}")


def usage(layout: Layout, show_path: Callable[[Path], str]) -> list[str]:
    """Nothing to curl; say what it does."""
    return [f"keeps {show_path(torchserve.key_file(layout))} valid while the stack runs"]


SERVICE = Service(name=NAME, label=LABEL, ports=ports, prepare=prepare, ready=readiness, usage=usage)
