"""grpcio after `init_gevent()` lets greenlets overlap their calls: the gRPC user is truly open-loop."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

DELAY_S, CALLS = 0.2, 10


def _serve(port_q: mp.Queue, lifetime_s: float, most: Any) -> None:
    """The slow echo server; `most` (a shared int) ends up holding the most calls it had in flight at once."""
    import threading

    import grpc

    lock, active = threading.Lock(), [0]

    def echo(request: bytes, context: object) -> bytes:
        with lock:
            active[0] += 1
            most.value = max(most.value, active[0])
        time.sleep(DELAY_S)
        with lock:
            active[0] -= 1
        return request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=CALLS + 2))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("probe.Slow", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})]
    )
    port_q.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination(timeout=lifetime_s)


def test_concurrent_grpc_calls_overlap_under_gevent() -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    most = ctx.Value("i", 0)
    server = ctx.Process(target=_serve, args=(q, 60.0, most), daemon=True)
    server.start()
    try:
        port = q.get(timeout=30)
        probe = Path(__file__).with_name("grpc_gevent_probe.py")
        done = subprocess.run(
            [sys.executable, str(probe), f"127.0.0.1:{port}", str(CALLS)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.join(timeout=5)
    assert result["answers"] == CALLS and result["echoed"]
    # A property, not a wall-clock bound: calls from greenlets that blocked their thread would reach the server
    # one at a time. Each call sleeps DELAY_S on the server, so overlapping sends meet there however slow the box.
    assert most.value >= 2, (most.value, result)
