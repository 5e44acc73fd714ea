"""What the gateway benchmark measures, wired to real processes: the stack in `--run-dir` (TorchServe and the TF
side), a gateway and an Envoy the benchmark starts itself, and the no-op upstream.

Groups (`--groups`):
- `anchor`: the TF side's REST predict direct, through Envoy, through the gateway's v1 predict and its v2 REST (TF
  side over REST); TorchServe's gRPC direct and through the gateway (v2 REST in, TorchServe gRPC out). One rate.
- `ceiling`: closed loop through Envoy and through the gateway to the no-op upstream: requests per CPU-second.
- `stacks`, `noop`, `clients`: the earlier groups (TorchServe direct vs the gateway, the gateway in front of the
  no-op upstream, aiohttp vs httpx), each at a share of its measured capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import psutil

from contract import gateway_env, tskeys, v2
from contract.ports import Ports
from contract.state import load as read_state
from loadtest import affinity
from loadtest.gatewaybench import envoy, noop, placement, procs, senders
from loadtest.gatewaybench.measure import MAX_IN_FLIGHT, Ceiling, Group, Target
from supervisor.layout import Layout
from supervisor.processes import owned_group

GROUPS = ("anchor", "ceiling", "stacks", "noop", "clients")
V1_PATH, V2_PATH = "/v1/models/digits:predict", "/v2/models/digits/infer"


def variants(specs: list[str]) -> list[tuple[str, Path, dict[str, str]]]:
    """`--variant NAME=DIR[,KEY=VALUE...]`: another gateway, run from DIR's `gateway` package (`.`: this tree)
    with extra TWINSERVE_* (or other) variables: a lever measured in the same rounds as the gateway itself."""
    out = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        source, *pairs = rest.split(",")
        out.append((name, Path(source or ".").resolve(), dict(p.split("=", 1) for p in pairs)))
    return out


def _no_key() -> str | None:
    return None


class Plan:
    """Groups and ceilings to measure, with every process, session and channel they use (closed by `close`)."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> None:
        self.args, self.stack = args, stack
        self.groups: list[Group] = []
        self.ceilings: list[Ceiling] = []
        self.versions: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        """Process of each proxy by name (gateway, envoy, each variant): what a profile of a target attaches to."""
        self.x, self.want = senders.sample(Path(args.artifacts))
        self.noop_want = np.asarray([noop.LOGITS], np.float32)  # its one fixed answer: checked like any other

    def pid_of(self, target: str) -> int | None:
        """The proxy process a target's requests go through (None: a direct target)."""
        name, _, variant = target.partition("@")
        return self.pids.get(variant or name.split("->")[0].split("-")[0])

    def _process(self, proc: Any) -> Any:
        self.stack.callback(procs.stop_process, proc)
        return proc

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(target)
        self.stack.push_async_callback(channel.close)
        return channel

    async def build(self, groups: list[str]) -> Plan:
        """Start what the chosen groups need and list their targets."""
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT))
        self.stack.push_async_callback(self.session.close)
        upstreams: dict[str, int] = {}
        if {"anchor", "stacks"} & set(groups):
            self._stack_gateway()
            upstreams["tf-rest"] = self.ports.tf_rest
        if {"ceiling", "noop", "clients"} & set(groups):
            port = procs.free_port()
            self.noop_proc = self._process(procs.start_noop(port))
            self.noop_url, upstreams["noop"] = f"http://127.0.0.1:{port}", port
        if {"anchor", "ceiling"} & set(groups):
            proxy = envoy.start(upstreams, self.args.envoy_concurrency)
            self._process(proxy.proc)
            self.envoy, self.versions["envoy"] = proxy, proxy.version
            self.pids["envoy"] = proxy.proc.pid
        for name in groups:
            getattr(self, f"_{name}")()
        for g in self.groups:
            for t in g.targets:
                t.pid = self.pid_of(t.name)
        self._place()
        return self

    def _place(self) -> None:
        """Pin the proxies to their CPU and everything else to the others (`--cpus`; placement.py says why)."""
        self.placement = placement.plan(self.args.cpus)
        if self.placement.layout != "dedicated":
            return
        proxies = dict(self.pids)
        if hasattr(self, "noop_gateway"):
            proxies["gateway->noop"] = self.noop_gateway[2]
        self.placement.proxies = {name: affinity.tree(pid) for name, pid in proxies.items()}
        others: dict[str, list[psutil.Process]] = {"generator": [psutil.Process()]}
        if hasattr(self, "noop_proc"):
            others["noop"] = affinity.tree(self.noop_proc.pid)
        for name, service in getattr(self, "services", {}).items():
            others[f"stack {name}"] = owned_group(service.process)
        self.placement.others = others
        self.stack.callback(self.placement.restore)  # the stack's processes outlive the benchmark
        self.placement.apply()

    def _stack_gateway(self) -> None:
        """A gateway in front of the recorded stack: TF side over REST, TorchServe over gRPC, one worker."""
        run_dir = Path(self.args.run_dir)
        current = read_state(run_dir / "state.json")
        if current is None or not {"torchserve", "tfserving"} <= set(current.services):
            raise SystemExit(f"no TorchServe and TF side recorded in {run_dir}/state.json: run `make up` first")
        self.services = current.services
        self.ports, keys = current.ports, tskeys.KeyFile(tskeys.key_file_in(run_dir))
        self.key = keys.key
        layout = Layout(run_dir, Path(current.artifacts), current.host, current.ports)
        env = gateway_env.to_env({"backends": {"tfserving": {"protocol": "rest"}, "torchserve": {"protocol": "grpc"}}})
        proc, self.gw_url, grpc_port = procs.start_gateway(layout, env)
        self._process(proc)
        self.pids["gateway"] = proc.pid
        self.gw_channel = self._channel(f"127.0.0.1:{grpc_port}")
        self.ts_channel = self._channel(f"127.0.0.1:{self.ports.ts_grpc_inference}")
        self.variants: dict[str, str] = {}
        for name, source, extra in variants(self.args.variant):
            vproc, self.variants[name], _ = procs.start_gateway(layout, env | extra, source)
            self.pids[name] = self._process(vproc).pid

    def _anchor(self) -> None:
        s, x, want, v1 = self.session, self.x, self.want, senders.v1_body(self.x)
        tf, gw, body2 = f"http://127.0.0.1:{self.ports.tf_rest}", self.gw_url, v2.infer_json({"input": self.x})
        targets = [
            Target("tf-rest-direct", "anchor", senders.v1_rest(s, tf + V1_PATH, v1, want)),
            Target("envoy->tf-rest", "anchor", senders.v1_rest(s, self.envoy.urls["tf-rest"] + V1_PATH, v1, want)),
            Target(
                "gateway-v1->tf-rest", "anchor", senders.v1_rest(s, gw + V1_PATH, v1, want, {"X-Backend": "tfserving"})
            ),
            Target("gateway-v2->tf-rest", "anchor", senders.v2_rest(s, gw + V2_PATH, body2, "tfserving", want)),
            Target("ts-grpc-direct", "anchor", senders.ts_grpc(self.ts_channel, x, self.key, want)),
            Target("gateway-v2->ts-grpc", "anchor", senders.v2_rest(s, gw + V2_PATH, body2, "torchserve", want)),
        ]
        for name, url in self.variants.items():  # the same two paths through each variant, in the same rounds
            targets.append(
                Target(
                    f"gateway-v1->tf-rest@{name}",
                    "anchor",
                    senders.v1_rest(s, url + V1_PATH, v1, want, {"X-Backend": "tfserving"}),
                )
            )
            targets.append(
                Target(
                    f"gateway-v2->tf-rest@{name}", "anchor", senders.v2_rest(s, url + V2_PATH, body2, "tfserving", want)
                )
            )
        for t in targets:
            if t.name.startswith(("envoy->tf", "gateway-v1->tf", "gateway-v2->tf")):
                t.baseline = "tf-rest-direct"
        targets[5].baseline = "ts-grpc-direct"
        self.groups.append(Group("anchor", targets, rate=self.args.rate or self.args.anchor_rate))

    def _noop_gateway(self) -> tuple[str, int, int]:
        if not hasattr(self, "noop_gateway"):
            tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            layout = Layout(tmp, Path(self.args.artifacts), ports=Ports.ephemeral())  # no fixed port touched
            proc, url, grpc_port = procs.start_gateway(layout, procs.noop_gateway_env(self.noop_url))
            self.noop_gateway = (url, grpc_port, self._process(proc).pid)
        return self.noop_gateway

    def _ceiling(self) -> None:
        s, x, body2 = self.session, self.x, v2.infer_json({"input": self.x})
        url, _, pid = self._noop_gateway()
        self.ceilings += [
            Ceiling("noop-direct", senders.ts_rest(s, self.noop_url, x, _no_key, self.noop_want), self.noop_proc.pid),
            Ceiling(
                "envoy->noop",
                senders.ts_rest(s, self.envoy.urls["noop"], x, _no_key, self.noop_want),
                self.envoy.proc.pid,
            ),
            Ceiling("gateway-v2->noop", senders.v2_rest(s, url + V2_PATH, body2, "torchserve", self.noop_want), pid),
        ]

    def _stacks(self) -> None:
        s, x, want, body2, gw = self.session, self.x, self.want, v2.infer_json({"input": self.x}), self.gw_url
        direct = senders.ts_rest(s, f"http://127.0.0.1:{self.ports.ts_inference}", x, self.key, want)
        targets = [
            Target("torchserve-rest-direct", "stacks", direct),
            Target("torchserve-grpc-direct", "stacks", senders.ts_grpc(self.ts_channel, x, self.key, want)),
            Target("gateway-rest->torchserve", "stacks", senders.v2_rest(s, gw + V2_PATH, body2, "torchserve", want)),
            Target("gateway-grpc->torchserve", "stacks", senders.v2_grpc(self.gw_channel, x, "torchserve", want)),
        ]
        targets[2].baseline = targets[0].name
        targets[3].baseline = targets[1].name
        self.groups.append(Group("stacks", targets, rate=self.args.rate, probe=direct))

    def _noop(self) -> None:
        s, x, body2 = self.session, self.x, v2.infer_json({"input": self.x})
        url, grpc_port, _ = self._noop_gateway()
        direct = senders.ts_rest(s, self.noop_url, x, _no_key, self.noop_want)
        targets = [
            Target("noop-rest-direct", "noop", direct),
            Target(
                "gateway-rest->noop",
                "noop",
                senders.v2_rest(s, url + V2_PATH, body2, "torchserve", self.noop_want),
                "noop-rest-direct",
            ),
            Target(
                "gateway-grpc->noop",
                "noop",
                senders.v2_grpc(self._channel(f"127.0.0.1:{grpc_port}"), x, "torchserve", self.noop_want),
                "noop-rest-direct",
            ),
        ]
        self.groups.append(Group("noop", targets, rate=self.args.rate, probe=direct))

    def _clients(self) -> None:
        import httpx  # only this group compares clients

        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
        client = httpx.AsyncClient(limits=limits, timeout=30)
        self.stack.push_async_callback(client.aclose)
        direct = senders.ts_rest(self.session, self.noop_url, self.x, _no_key, self.noop_want)
        targets = [
            Target("aiohttp->noop", "clients", direct),
            Target("httpx->noop", "clients", senders.ts_rest(client, self.noop_url, self.x, _no_key, self.noop_want)),
        ]
        self.groups.append(Group("clients", targets, rate=self.args.rate, probe=direct))
