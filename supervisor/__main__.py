"""`python -m supervisor up|down|status`: run the native stack from a shell.

Exit status: 0 success; 1 a supervisor error (busy port, missing artifact, service not ready, ...);
2 bad arguments; for `status`, 1 when a recorded service is down or unhealthy and 3 when nothing is recorded.
"""

from __future__ import annotations

import argparse
import signal
import sys

from rich.console import Console

from contract.ports import Ports
from supervisor.errors import SupervisorError
from supervisor.services import DEFAULT_SERVICES, SERVICES
from supervisor.stack import Stack
from supervisor.summary import print_status, print_up

EXIT_NOTHING_RECORDED = 3


def _port(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {text!r}")
    return name.strip(), int(value)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m supervisor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", default="run", help="supervisor-owned directory (default: run)")
    up = sub.add_parser("up", parents=[common], help="start services and wait until they are ready")
    up.add_argument(
        "--services",
        default=",".join(DEFAULT_SERVICES),
        help=f"comma-separated, from: {', '.join(SERVICES)} (default: all)",
    )
    up.add_argument("--artifacts", default="artifacts", help="exported models (default: artifacts)")
    up.add_argument("--host", default="127.0.0.1", help="address every service binds (default: 127.0.0.1)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness (default: 180)")
    up.add_argument(
        "--port",
        type=_port,
        action="append",
        default=[],
        metavar="NAME=PORT",
        help=f"override one port, repeatable; names: {', '.join(Ports().as_dict())}",
    )
    down = sub.add_parser("down", parents=[common], help="stop what `up` recorded in <run-dir>/state.json")
    down.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL (default: 15)")
    sub.add_parser("status", parents=[common], help="what runs, its ports and health")
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through Stack.up, which stops what it started; default SIGTERM would orphan it.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = console or Console()

    def report(line: str) -> None:
        console.print(f"• {line}", markup=False, highlight=False, soft_wrap=True)

    try:
        if args.command == "up":
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            try:
                ports = Ports.from_dict(dict(args.port))
                services = [s.strip() for s in args.services.split(",") if s.strip()]
                stack = Stack(args.run_dir, args.artifacts, ports, args.host, report=report)
                current = stack.up(services, timeout=args.timeout)
            except ValueError as err:
                parser.error(str(err))
            print_up(console, current, stack.layout, SERVICES)
            return 0
        stack = Stack(args.run_dir, "artifacts", report=report)
        if args.command == "down":
            if not stack.down(timeout=args.timeout):
                report(f"nothing recorded in {stack.layout.state_file}; nothing to stop")
            return 0
        statuses = stack.status()
        if not statuses:
            report(f"nothing recorded in {stack.layout.state_file}; nothing runs")
            return EXIT_NOTHING_RECORDED
        print_status(console, statuses)
        return 0 if all(s.running and s.health and s.health.ready for s in statuses) else 1
    except SupervisorError as err:
        console.print(f"error: {err}", style="red", markup=False, highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("interrupted; services started by this command were stopped", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
