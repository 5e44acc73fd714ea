"""The web UI's command lines, in one place: `python -m loadtest.webui`, the Locust command it runs, and the
master and worker commands of every container deployment.

docker-compose.yml spells out its locust-master and locust-worker commands (compose cannot call Python);
tests/deploy checks them against `container_args`. The Kubernetes renderer (deploy/k8s/locust.py) calls these
functions for its Deployments and for the Locust operator's LocustTest. So compose and Kubernetes cannot drift.
Stdlib only: the renderer imports this without Locust (which would monkey-patch the renderer's process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadtest.ui.catalog import environment_for

LAUNCHER = ("python", "-m", "loadtest.webui")
"""What the master and worker containers run (compose's entrypoint, the Kubernetes Deployments' command)."""
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
"""The web UI's locustfile: one user class per target (what every role runs)."""
WORKDIR = "/app"
"""The loadtest image's working directory (loadtest/Dockerfile)."""
IMAGE_LOCUSTFILE = "loadtest/ui/locustfile.py"
"""LOCUSTFILE inside the image, relative to WORKDIR: the image's ENTRYPOINT is `locust -f` this file."""
ARTIFACTS = f"{WORKDIR}/artifacts"
"""Where containers find `manifest.json` and `samples/` (every role builds the classes from them)."""
KEYS = f"{WORKDIR}/run/torchserve"
"""Where workers find TorchServe's key_file.json: `run/torchserve/` below WORKDIR, as natively."""
RESULTS = "results/in-compose"
"""Where the master saves UI runs, relative to WORKDIR; compose bind-mounts the same path of the host there."""
MASTER_SERVICE = "locust-master"
"""The master's name on the network: compose's service and the Kubernetes Service."""
WEB_PORT = 8089
MASTER_PORT = 5557
ROLE_FLAGS = ("--master", "--worker", "--master-host", "--master-port", "--master-bind-host", "--master-bind-port")
"""What the Locust operator sets itself; its command seeds leave these out."""
_VALUED = ROLE_FLAGS[2:]


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The launcher's command line (`python -m loadtest.webui`)."""
    ap = argparse.ArgumentParser(
        prog="python -m loadtest.webui", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stack", choices=["auto", "native", "compose"], default="auto")
    ap.add_argument("--state", type=Path, default=Path("run/state.json"))
    ap.add_argument("--models", default="", help="only these models (default: every model the stack serves)")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--results", type=Path, default=Path("results"), help="where UI runs are saved")
    ap.add_argument("--web-host", default="127.0.0.1", help="loopback by default: the UI has no auth")
    ap.add_argument("--web-port", type=int, default=WEB_PORT)
    role = ap.add_mutually_exclusive_group()
    role.add_argument("--master", action="store_true", help="serve the UI and wait for workers")
    role.add_argument("--worker", action="store_true", help="drive targets for a master (no UI)")
    ap.add_argument(
        "--master-host", default="127.0.0.1", help="the master's address (worker); its bind address (master)"
    )
    ap.add_argument("--master-port", type=int, default=MASTER_PORT, help="the master's port for workers")
    ap.add_argument("--print", action="store_true", help="print the command instead of running it")
    return ap


def locust_command(args: argparse.Namespace, locustfile: str = str(LOCUSTFILE)) -> list[str]:
    """The Locust arguments the launcher runs for this role (after `python -m locust`)."""
    cmd = ["-f", locustfile, "--twinserve-results", str(args.results)]
    if args.worker:
        return [*cmd, "--worker", "--master-host", args.master_host, "--master-port", str(args.master_port)]
    cmd += ["--class-picker", "--web-host", args.web_host, "--web-port", str(args.web_port)]
    if args.master:
        cmd += ["--master", "--master-bind-host", args.master_host, "--master-bind-port", str(args.master_port)]
    return cmd


def python_command(args: argparse.Namespace) -> list[str]:
    """The whole command the launcher replaces itself with."""
    return [sys.executable, "-m", "locust", *locust_command(args)]


def container_args(role: str, master_host: str = MASTER_SERVICE) -> list[str]:
    """`python -m loadtest.webui` arguments of the master or a worker container: services found by name on the
    contract ports (`--stack compose`), models from ARTIFACTS; the master's UI and port open to the network."""
    common = ["--stack", "compose", "--artifacts", ARTIFACTS]
    if role == "master":
        return [
            *common,
            *("--master", "--results", RESULTS, "--web-host", "0.0.0.0", "--web-port", str(WEB_PORT)),
            *("--master-host", "0.0.0.0", "--master-port", str(MASTER_PORT)),
        ]
    if role == "worker":
        return [*common, "--worker", "--master-host", master_host, "--master-port", str(MASTER_PORT)]
    raise ValueError(f"role must be master or worker, got {role!r}")


def container_env(role: str) -> dict[str, str]:
    """The TWINSERVE_* variables the launcher gives Locust for this container's arguments."""
    args = build_parser().parse_args(container_args(role))
    return environment_for(args.stack, args.state, args.artifacts, [m for m in args.models.split(",") if m] or None)


def operator_seed(role: str) -> list[str]:
    """The Locust operator's command seed for a role: what the launcher would run in that container, less the
    image's `-f` (its ENTRYPOINT carries it) and the role flags, which the operator adds itself."""
    cmd = locust_command(build_parser().parse_args(container_args(role)), IMAGE_LOCUSTFILE)
    out: list[str] = []
    skip = 0
    for i, arg in enumerate(cmd):
        if skip:
            skip -= 1
        elif arg == "-f" and cmd[i + 1] == IMAGE_LOCUSTFILE:
            skip = 1
        elif arg in ROLE_FLAGS:
            skip = 1 if arg in _VALUED else 0
        else:
            out.append(arg)
    return out
