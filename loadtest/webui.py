"""`make locust`: Locust's web UI on 127.0.0.1:8089 with twinserve's users, aimed at the running stack.

The targets come from run/state.json (or compose's service names); the UI's custom fields hold the point:
`lt-target` (one of the specs printed at start, '<id>@<host>:<port>'), `lt-rate` (open loop, req/s),
`lt-duration`, ... Keep the user count at 1: one user drives the whole schedule, the rate sets the load.
Pick RestUser for REST targets and GrpcUser for gRPC ones.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from loadtest.stack import discover


def command(args: argparse.Namespace) -> list[str]:
    """The Locust command line for the web UI."""
    stack = discover(args.stack, args.state)
    targets = stack.targets(args.models.split(","))
    if not targets:
        raise SystemExit("no target: is the stack up? (`make up`)")
    first = next((t for t in targets if t.id == args.target), targets[0])
    print("targets of the running stack (paste one into the lt-target field):")
    for t in targets:
        print(f"  {'GrpcUser' if t.protocol == 'grpc' else 'RestUser'}  {t.spec if '@' in t.spec else t.id}")
    user = "GrpcUser" if first.protocol == "grpc" else "RestUser"
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--class-picker",
        "--web-host",
        args.web_host,
        "--web-port",
        str(args.web_port),
        "-u",
        "1",
        "-r",
        "1",
        "-H",
        first.address if first.protocol == "rest" else "http://grpc",
        "--lt-target",
        first.spec,
        "--lt-run-dir",
        str(stack.run_dir),
        "--lt-artifacts",
        str(args.artifacts),
        "--lt-duration",
        "60",
        user,
    ]


def main(argv: list[str] | None = None) -> int:
    """Replace this process with Locust's web UI."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.webui", description=__doc__)
    ap.add_argument("--stack", choices=["auto", "native", "compose"], default="auto")
    ap.add_argument("--state", type=Path, default=Path("run/state.json"))
    ap.add_argument("--models", default="digits,resnet18")
    ap.add_argument("--target", default="torchserve-rest-direct:digits", help="preselected target id")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--web-host", default="127.0.0.1", help="loopback by default: the UI has no auth")
    ap.add_argument("--web-port", type=int, default=8089)
    ap.add_argument("--print", action="store_true", help="print the command instead of running it")
    args = ap.parse_args(argv)
    cmd = command(args)
    if args.print:
        print(" ".join(cmd))
        return 0
    print(f"Locust web UI: http://{args.web_host}:{args.web_port}  (Ctrl-C stops it)", flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
