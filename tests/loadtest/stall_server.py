"""A deliberately stalled HTTP server on 127.0.0.1: answers in about 1 ms, but freezes once for `stall_s`.

The one place a fake is right: the fault (a server-wide stall) must be injected on demand.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port_q: mp.Queue, stall_after: int, stall_s: float, lifetime_s: float) -> None:
    """Serve until `lifetime_s` passes; request number `stall_after` holds a global lock for `stall_s`."""
    lock = threading.Lock()
    seen = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes; Nagle would add 40 ms

        def do_GET(self) -> None:
            with lock:
                seen[0] += 1
                if seen[0] == stall_after:
                    time.sleep(stall_s)  # every other request queues behind this lock: a server-wide stall
            time.sleep(0.001)
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_q.put(server.server_address[1])
    threading.Timer(lifetime_s, server.shutdown).start()
    server.serve_forever(poll_interval=0.05)
