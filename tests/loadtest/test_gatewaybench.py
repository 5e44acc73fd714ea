"""The gateway benchmark end to end: real Envoy and a real gateway in front of real TorchServe and the TF Serving
stand-in (native_stack); it must report Envoy's anchor row, the gateway's rows over the same baseline, judged
points, and the ceilings. Nothing here asserts a speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.gatewaybench import envoy
from loadtest.gatewaybench.__main__ import main
from tests.conftest import NativeStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bootstrap_is_a_plain_proxy() -> None:
    config = envoy.bootstrap({"up": (10001, 8501)}, admin_port=10002)
    (listener,) = config["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"] == {"cluster": "up", "timeout": "0s"}  # no retry policy, no timeout cutting requests
    assert manager["codec_type"] == "HTTP1"
    (cluster,) = config["static_resources"]["clusters"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "127.0.0.1", "port_value": 8501}


def test_bench_reports_the_envoy_anchor_beside_the_gateway(native_stack: NativeStack, tmp_path: Path) -> None:
    out = tmp_path / "gb"
    argv = ["--run-dir", str(native_stack.run_dir), "--out", str(out), "--groups", "anchor,ceiling"]
    argv += ["--criteria", "quick", "--duration", "2", "--warmup", "0.5", "--rounds", "1", "--anchor-rate", "40"]
    argv += ["--ceiling-s", "1", "--ceiling-concurrency", "4"]
    assert main(argv) == 0
    report = json.loads((out / "bench.json").read_text())

    names = {p["target"]["name"] for p in report["points"]}
    assert names == {
        "tf-rest-direct",
        "envoy->tf-rest",
        "gateway-v1->tf-rest",
        "gateway-v2->tf-rest",
        "ts-grpc-direct",
        "gateway-v2->ts-grpc",
    }
    for p in report["points"]:
        assert p["counts"]["ok"] > 0 and p["counts"]["wrong"] == 0 and p["counts"]["errors"] == 0, p["target"]
        assert p["counts"]["checked"] == p["counts"]["ok"], "every answer is compared with the reference"
        assert isinstance(p["valid"], bool) and "outcome" in p, "judged by loadtest.validity"
        if not p["valid"]:
            assert p["reasons"]

    hops = report["added_ms"]
    assert hops["envoy->tf-rest"]["baseline"] == "tf-rest-direct"
    assert hops["gateway-v1->tf-rest"]["baseline"] == "tf-rest-direct"
    assert hops["gateway-v2->ts-grpc"]["baseline"] == "ts-grpc-direct"
    for row in hops.values():
        assert all(isinstance(row[k], float) for k in ("p50", "p99", "p99.9")), row
    assert set(report["against_envoy"]) == {"gateway-v1->tf-rest", "gateway-v2->tf-rest"}
    assert report["versions"]["envoy"].startswith("1.40")

    ceilings = {c["target"]: c for c in report["ceilings"]}
    assert set(ceilings) == {"noop-direct", "envoy->noop", "gateway-v2->noop"}
    assert all(c["requests"] > 0 and c["rps_per_core"] for c in ceilings.values())

    md = (out / "bench.md").read_text()
    assert "| envoy->tf-rest | tf-rest-direct |" in md
