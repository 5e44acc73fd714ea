"""What one hop costs at its least here: Envoy, a bare Python byte forwarder and gateway trees, one request at a time.

Starts, in front of the TF side `make up` recorded in run/: Envoy (as the gateway benchmark configures it), a
forwarder that copies bytes between the client's connection and its own upstream connection with uvloop streams (no
HTTP parsing: the least any Python proxy does per request) and one gateway per tree given (TF side over REST, as the
benchmark starts it). Then sends TF REST predicts (`X-Backend: tfserving`) one at a time, 10 ms apart (a request
meeting an idle proxy, as at 100 req/s), in rounds that visit every target in a shuffled order, and prints each
target's p50 / p90 / p99 and what it adds over the direct path at each.

    PYTHONPATH=. python docs/gateway-levers/hopfloor.py --rounds 12 [--tree before=/path/to/other/tree]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from contract import gateway_env
from contract.ports import free_ports
from contract.state import load
from loadtest.gatewaybench import envoy, procs
from supervisor.layout import Layout

PATH = "/v1/models/digits:predict"


def forward(port: int, upstream: int) -> None:
    """Serve the byte forwarder on `port` (run in its own process: `hopfloor.py --forward PORT UPSTREAM`)."""
    import uvloop

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


class Client:
    """Keep-alive POSTs to one port; reconnects when the server closed an idle connection."""

    def __init__(self, port: int, body: bytes) -> None:
        self.port, self.body = port, body
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def one(self) -> float:
        start = time.perf_counter()
        try:
            self.conn.request("POST", PATH, self.body, {"Content-Type": "application/json", "X-Backend": "tfserving"})
            reply = self.conn.getresponse()
            reply.read()
        except (ConnectionError, http.client.RemoteDisconnected):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port)
            return self.one()
        assert reply.status == 200, reply.status
        return time.perf_counter() - start


def main() -> None:
    if sys.argv[1:2] == ["--forward"]:
        forward(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=60, help="requests per target and round")
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR: another gateway tree beside this one")
    args = parser.parse_args()
    state = load(Path("run/state.json"))
    assert state is not None, "run `make up STACK=native` first"
    layout = Layout(Path("run"), Path(state.artifacts), state.host, state.ports)
    tf = state.ports.tf_rest
    started: list[subprocess.Popen[bytes]] = []
    ports = {"direct": tf}
    try:
        proxy = envoy.start({"tf": tf})
        started.append(proxy.proc)
        ports["envoy"] = int(proxy.urls["tf"].rsplit(":", 1)[1])
        ports["forwarder"] = free_ports(1)[0]
        started.append(subprocess.Popen([sys.executable, __file__, "--forward", str(ports["forwarder"]), str(tf)]))
        trees: dict[str, Path | None] = {"gateway": None}
        trees.update({name: Path(where) for name, where in (t.split("=", 1) for t in args.tree)})
        settings = {"backends": {"tfserving": {"protocol": "rest"}, "torchserve": {"protocol": "grpc"}}}
        for name, tree in trees.items():  # as the gateway benchmark starts its own (TF side over REST)
            proc, url, _ = procs.start_gateway(layout, gateway_env.to_env(settings), source=tree)
            ports[name] = int(url.rsplit(":", 1)[1])
            started.append(proc)
        time.sleep(1)
        body = json.dumps({"instances": np.zeros((1, 1, 8, 8), np.float32).tolist()}).encode()
        clients = {name: Client(port, body) for name, port in ports.items()}
        for client in clients.values():  # warm every path
            for _ in range(50):
                client.one()
        took: dict[str, list[float]] = {name: [] for name in clients}
        for round_ in range(args.rounds):
            order = list(clients)
            random.Random(round_).shuffle(order)
            for name in order:
                for _ in range(args.per_round):
                    time.sleep(0.010)
                    took[name].append(clients[name].one() * 1000)
    finally:
        for proc in started:
            proc.terminate()
            proc.wait(20)
    pct = {name: np.percentile(values, [50, 90, 99]) for name, values in took.items()}
    print(f"{len(took['direct'])} requests per target, 10 ms apart; ms:")
    for name, (p50, p90, p99) in pct.items():
        added = pct[name] - pct["direct"]
        extra = " / ".join(f"{a:.3f}" for a in added)
        print(f"  {name:>16}  p50 {p50:.3f}  p90 {p90:.3f}  p99 {p99:.3f}   added {extra}")


if __name__ == "__main__":
    main()
