"""Where a request's time goes inside the gateway: drive a gateway tree patched with timeline.diff.

The patch stamps time.perf_counter() at each step of a request (uvicorn's first byte, the inference lane's task
created and running, the body, the handler's parse and decode, the core, the limiter, the client, the upstream's
answer, the response) and writes the stamps to /tmp/gateway-timeline.json. (Before the lane, commit 2fdecde, it
stamped the ASGI app's entry, the edge and the fast path instead: the version in git at e5172bb.) This script
starts that tree's gateway in front of the stack `make up` recorded in run/ (TF side over REST), sends TF REST
predicts pinned to the TF side one at a time, first back to back, then 10 ms apart (a request arriving at an idle
gateway, as at 100 req/s), and prints the median of every step.

    mkdir /tmp/tl && git archive HEAD | tar -x -C /tmp/tl && git -C /tmp/tl apply $PWD/docs/gateway-levers/timeline.diff
    PYTHONPATH=. python docs/gateway-levers/timeline.py /tmp/tl [v1|v2]
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from contract import gateway_env, v2
from contract.ports import free_ports
from contract.state import load
from gateway import launch as gateway_launch
from loadtest.gatewaybench.procs import QUIET_GATEWAY, wait_ready
from supervisor.layout import Layout
from supervisor.processes import spawn

STAMPS = Path("/tmp/gateway-timeline.json")
STEPS = [
    "in",
    "hc",
    "app",
    "rc",
    "fast",
    "body",
    "h0",
    "h_parsed",
    "h_decoded",
    "c0",
    "c_valid",
    "c_planned",
    "u0",
    "u_acq",
    "g0",
    "tf_body",
    "r0",
    "r_head",
    "up_write",
    "up_done",
    "resume",
    "tf_parsed",
    "g_ret",
    "g_out",
    "u_ret",
    "u_fin",
    "u_obs",
    "c_ret",
    "c_obs",
    "h_ret",
    "h_out",
    "send",
    "out",
]


def main() -> None:
    tree, path = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "v1")
    run_dir = Path("run")
    state = load(run_dir / "state.json")
    assert state is not None, "run `make up STACK=native` first"
    layout = Layout(run_dir, Path(state.artifacts), state.host, state.ports)
    rest, grpc_port = free_ports(2)
    backends = {"tfserving": {"protocol": "rest"}, "torchserve": {"protocol": "grpc"}}
    server = {"port": rest, "grpc_port": grpc_port, "drain_delay_s": 0}
    env = {**QUIET_GATEWAY, **gateway_env.to_env({"backends": backends, "server": server})}
    launch = replace(gateway_launch.prepare(layout, env=env), cwd=tree)
    STAMPS.unlink(missing_ok=True)
    proc, _ = spawn(launch, Path("/tmp/gateway-timeline.log"), os.environ)
    wait_ready(proc, f"http://127.0.0.1:{rest}/v2/health/ready", log=Path("/tmp/gateway-timeline.log"))
    x = np.zeros((1, 1, 8, 8), np.float32)
    if path == "v1":
        url, body = "/v1/models/digits:predict", json.dumps({"instances": x.tolist()}).encode()
    else:
        url, body = "/v2/models/digits/infer", v2.infer_json({"input": x})
    headers = {"Content-Type": "application/json", "X-Backend": "tfserving"}
    conn = http.client.HTTPConnection("127.0.0.1", rest)

    def one() -> None:
        conn.request("POST", url, body, headers)
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 200

    for _ in range(400):
        one()
    for _ in range(400):
        time.sleep(0.010)
        one()
    time.sleep(1)
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(30)
    stamps = json.loads(STAMPS.read_text())
    for name, part in (("back to back", stamps[100:400]), ("10 ms apart", stamps[500:800])):
        steps = [s for s in STEPS if all(s in r for r in part)]
        print(f"{name} ({len(part)} requests), median µs per step:")
        for a, b in pairwise(steps):
            print(f"  {a:>10} -> {b:<10} {sorted((r[b] - r[a]) * 1e6 for r in part)[len(part) // 2]:7.1f}")
        total = sorted((r["out"] - r["in"] - (r["up_done"] - r["up_write"])) * 1e6 for r in part)[len(part) // 2]
        print(f"  in the gateway, upstream excluded: {total:.0f} µs")


if __name__ == "__main__":
    main()
