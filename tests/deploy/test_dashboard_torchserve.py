"""TorchServe's latency panels: its latency sums grow with REST requests only, its request count with gRPC too.

The real server's behaviour is checked here (the fact loadtest/servermetrics.py relies on as well); the
dashboard must never divide one population's time by another's count.
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
import pytest
import requests

from contract._generated import twinserve_torchserve_pb2 as pb
from loadtest.servermetrics import TS_INFERENCE_US, TS_QUEUE_US, TS_REQUESTS, counters
from tests.deploy.conftest import REPO

DASHBOARD = json.loads((REPO / "deploy/grafana/dashboards/twinserve.json").read_text())
TS_SUMS = (TS_INFERENCE_US, TS_QUEUE_US)


def _exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def test_no_panel_divides_torchserve_rest_only_sums_by_its_request_count() -> None:
    for title, expr in _exprs():
        if any(s in expr for s in TS_SUMS):
            assert TS_REQUESTS not in expr, f"{title}: REST-only latency sums over every request under-read: {expr}"


def test_torchserve_latency_per_call_comes_from_the_gateway_and_is_seconds() -> None:
    panel = next(p for p in DASHBOARD["panels"] if p["title"].startswith("TorchServe mean latency"))
    (target,) = panel["targets"]
    sums = re.findall(r"twinserve_gateway_upstream_duration_seconds_(sum|count)\{([^}]*)\}", target["expr"])
    assert [kind for kind, _ in sums] == ["sum", "count"], target["expr"]
    assert sums[0][1] == sums[1][1] and 'backend="torchserve"' in sums[0][1]  # one population over itself
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


@pytest.mark.e2e
def test_torchserve_grpc_requests_count_but_add_no_latency(native_stack: Any) -> None:
    """What real TorchServe 0.12 does: the reason the panels above are built as they are."""
    p = native_stack.ports
    body = json.dumps({"instances": [[[[0.5] * 8] * 8]]}).encode()
    metrics_url = f"http://127.0.0.1:{p.ts_metrics}/metrics"

    def scrape() -> dict[str, float]:
        return counters("torchserve", "digits", requests.get(metrics_url, timeout=10).text)

    def rest() -> None:
        headers = {"Authorization": f"Bearer {native_stack.token()}", "Content-Type": "application/json"}
        reply = requests.post(
            f"http://127.0.0.1:{p.ts_inference}/predictions/digits", data=body, headers=headers, timeout=30
        )
        assert reply.status_code == 200, reply.text

    start = scrape()
    for _ in range(3):
        rest()
    after_rest = scrape()
    with grpc.insecure_channel(f"127.0.0.1:{p.ts_grpc_inference}") as channel:
        call = channel.unary_unary(
            "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
            request_serializer=pb.PredictionsRequest.SerializeToString,
            response_deserializer=pb.PredictionResponse.FromString,
        )
        for _ in range(4):
            auth = [("authorization", f"Bearer {native_stack.token()}")]
            call(pb.PredictionsRequest(model_name="digits", input={"body": body}), metadata=auth, timeout=30)
    after_grpc = scrape()
    assert after_rest["requests"] - start["requests"] == 3 and after_rest["inference_us"] > start["inference_us"]
    assert after_grpc["requests"] - after_rest["requests"] == 4  # gRPC requests are counted...
    assert after_grpc["inference_us"] == after_rest["inference_us"]  # ...but add no time
    assert after_grpc["queue_us"] == after_rest["queue_us"]
