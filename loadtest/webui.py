"""`make locust`: Locust's web UI on 127.0.0.1:8089 where each user class is one target of the running stack.

Tick the targets to load (the default is one), set the Rate (requests/s per target, open loop) and press Start.
Each ticked target gets one user; the run ends after warm-up + the measured seconds (or at Stop) and is saved
like `make bench` saves its runs: results/<time>-ui/ with summary.json, report.html and the histograms; the
"twinserve" tab shows the verdicts and Download Data links to the report.

Distributed: `--master` here and `--worker --master-host H` elsewhere (same stack view, same artifacts). In
containers, compose's locust-master and locust-worker run this with the arguments of loadtest/ui/launch.py.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import psutil

from loadtest.pointrun import reachable
from loadtest.ui.catalog import CatalogError, environment_for, load
from loadtest.ui.launch import build_parser, python_command


def port_holder(port: int) -> str | None:
    """'pid 1234 (python -m locust ...)' of the process listening on TCP `port`, or None when none is seen."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                cmd = " ".join(psutil.Process(c.pid).cmdline()) or psutil.Process(c.pid).name()
            except psutil.Error:
                cmd = "?"
            return f"pid {c.pid} ({' '.join(cmd.split())[:120]})"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on (naming the holder), or None when it is free."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            who = port_holder(port)
            held = f"held by {who}" if who else str(err.strerror or err)
            return (
                f"port {port} is busy: {held}. Is `make locust` already running? Open http://{host}:{port}, "
                f"stop that process, or choose another port: make locust BENCH_ARGS='--web-port {port + 1}'"
            )
    return None


def results_problem(results: Path) -> str | None:
    """Why UI runs could not be saved in `results` (checked before the UI starts, not after a run), or None."""
    try:
        results.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=results):
            pass
    except OSError as err:
        return (
            f"cannot save UI runs in {results}: {err.strerror or err}. Make it writable by uid {os.getuid()} "
            "(in compose, `make up STACK=compose` creates results/in-compose for the image's uid 10001), "
            "or choose another folder with --results"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Check the port and the stack, say what the UI offers, then replace this process with Locust."""
    args = build_parser(__doc__).parse_args(argv)
    models = [m for m in args.models.split(",") if m] or None
    try:
        catalog = load(args.stack, args.state, args.artifacts, models)
    except CatalogError as err:
        print(f"make locust: {err}", file=sys.stderr)
        return 2
    if not args.worker:
        problem = port_problem(args.web_host, args.web_port)
        if problem is None and args.master:
            problem = port_problem(args.master_host, args.master_port)
        problem = problem or results_problem(args.results)
        if problem:
            print(f"make locust: {problem}", file=sys.stderr)
            return 2
    cmd = python_command(args)
    env = os.environ | environment_for(args.stack, args.state, catalog.artifacts, models)
    if args.print:
        print(" ".join(f"{k}={v}" for k, v in env.items() if k.startswith("TWINSERVE_")), " ".join(cmd))
        return 0
    unreachable = [t for t in catalog.targets if not reachable(t, timeout_s=0.5)]
    tf = "real TF Serving" if catalog.stack.tf_side == "real" else "the TF Serving STAND-IN"
    print(f"{len(catalog.targets)} targets ({catalog.stack.source} stack, {tf}); each is one user class in the UI:")
    for t in catalog.targets:
        where = f"{t.host}:{t.port}"
        print(f"  {catalog.label_of(t):50s} {where:22s}{'  UNREACHABLE' if t in unreachable else ''}")
    if unreachable:
        print(f"{len(unreachable)} target(s) do not answer: ticking one gives a message naming it (`make status`).")
    if args.worker:
        print(f"Locust worker for the master at {args.master_host}:{args.master_port}", flush=True)
    else:
        print(f"Locust web UI: http://{args.web_host}:{args.web_port}  (runs saved in {args.results}/; Ctrl-C stops)")
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
