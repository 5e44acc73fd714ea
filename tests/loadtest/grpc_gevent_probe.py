"""Run as a script: N concurrent greenlets call a slow gRPC method through a gevent-initialised grpcio.

Prints the wall time as JSON. Kept out of pytest's process: gevent monkey-patching must not leak into it.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # as Locust does on import

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import grpc  # noqa: E402
from grpc.experimental import gevent as grpc_gevent  # noqa: E402

grpc_gevent.init_gevent()


def main(address: str, calls: int) -> None:
    """Fire `calls` concurrent unary calls and report the wall time they took together."""
    with grpc.insecure_channel(address) as channel:
        echo = channel.unary_unary("/probe.Slow/Echo")
        echo(b"warm", timeout=10)
        t0 = time.perf_counter()
        jobs = [gevent.spawn(echo, f"call {i}".encode(), timeout=10) for i in range(calls)]
        gevent.joinall(jobs, timeout=30, raise_error=True)
        answers = sorted(j.value for j in jobs)
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - t0,
                "answers": len(answers),
                "echoed": answers == sorted(f"call {i}".encode() for i in range(calls)),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
