"""`python -m gateway`: uvicorn (uvloop + httptools, N workers) with the gRPC server in every worker; SIGTERM drains.

Configuration comes from TWINSERVE_* variables (gateway/settings.py); the flags below are shortcuts that
set those variables, so worker processes (spawned, not forked) see the same settings. Beyond loopback it
refuses to start without API keys unless TWINSERVE_SERVER__ALLOW_UNAUTHENTICATED=true (gateway/exposure.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile

from gateway.exposure import refusal
from gateway.server import run
from gateway.settings import Settings

FLAGS = {
    "host": "TWINSERVE_SERVER__HOST",
    "port": "TWINSERVE_SERVER__PORT",
    "grpc_port": "TWINSERVE_SERVER__GRPC_PORT",
    "workers": "TWINSERVE_SERVER__WORKERS",
    "routes": "TWINSERVE_ROUTES_FILE",
}


def main(argv: list[str] | None = None) -> None:
    """Parse the shortcut flags, validate settings once, and run uvicorn until SIGTERM/SIGINT drains it."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--grpc-port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--routes", help="routes YAML file")
    args = parser.parse_args(argv)
    for key, env in FLAGS.items():
        value = getattr(args, key)
        if value is not None:
            os.environ[env] = str(value)  # children inherit the environment, not our argv
    settings = Settings()  # fail fast on a bad configuration, before any worker starts
    problem = refusal(settings)
    if problem is not None:
        parser.exit(2, f"python -m gateway: {problem}\n")
    if settings.server.workers > 1 and settings.telemetry.metrics_multiproc_dir is None:
        # Prometheus multiprocess mode: every worker writes its values to files in one shared directory.
        path = tempfile.mkdtemp(prefix="twinserve-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        os.environ["TWINSERVE_TELEMETRY__METRICS_MULTIPROC_DIR"] = path
    run(settings)


if __name__ == "__main__":
    main()
