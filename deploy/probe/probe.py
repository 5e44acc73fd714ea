"""Container health check without spaces in its arguments: `probe.py http URL` or `probe.py tcp HOST PORT`.

podman (4.3, through the Docker API) splits a CMD health check's arguments on spaces, so `python -c "import ..."`
arrives as `python -c import` and never passes; a script path and plain arguments survive every engine.
Exit 0 when the URL answers 2xx (or the TCP port accepts), 1 otherwise, with the reason on stdout.
"""

from __future__ import annotations

import socket
import sys
import urllib.request

TIMEOUT_S = 4.0


def main(argv: list[str]) -> int:
    """Probe once; return the exit status."""
    try:
        if len(argv) == 2 and argv[0] == "http":
            with urllib.request.urlopen(argv[1], timeout=TIMEOUT_S) as reply:
                return 0 if 200 <= reply.status < 300 else 1
        if len(argv) == 3 and argv[0] == "tcp":
            socket.create_connection((argv[1], int(argv[2])), TIMEOUT_S).close()
            return 0
    except (OSError, ValueError) as err:
        print(f"{' '.join(argv)}: {err}")
        return 1
    print("usage: probe.py http URL | probe.py tcp HOST PORT")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
