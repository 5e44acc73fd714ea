"""A harmless long-running service for supervisor tests: answers GET / on a loopback port until stopped.

Options make it misbehave the ways real servers do: spawn a grandchild, ignore SIGTERM, die at start-up,
or never become ready.
"""

from __future__ import annotations

import argparse
import http.server
import signal
import subprocess
import sys


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"sleeper ok\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grandchild-pidfile", help="spawn a sleeping grandchild, write its pid here")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--fail", action="store_true", help="print an error and exit at once")
    parser.add_argument("--never-ready", action="store_true", help="answer 503 forever")
    args = parser.parse_args()
    if args.fail:
        print("sleeper: boom, bad configuration on line 3", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild_pidfile:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args.grandchild_pidfile, "w") as f:
            f.write(str(child.pid))
    _Handler.status = 503 if args.never_ready else 200
    server = http.server.HTTPServer(("127.0.0.1", args.port), _Handler)
    print(f"sleeper: serving on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
