"""The observe profile: Prometheus (from Debian's package here, docker-compose.observe-local.yml) scrapes the
gateway, TorchServe and the TF side in containers, and the stand-in's marker reaches it."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.containers.conftest import ComposeStack

pytestmark = [pytest.mark.containers, pytest.mark.e2e]
JOBS = {"gateway", "torchserve", "tfserving"}


def query(stack: ComposeStack, promql: str) -> list[dict[str, Any]]:
    r = requests.get(stack.url(9090, "/api/v1/query"), params={"query": promql}, timeout=10)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


def test_prometheus_scrapes_every_server(compose_stack: ComposeStack) -> None:
    try:
        requests.get(compose_stack.url(9090, "/-/ready"), timeout=5)
    except requests.RequestException:
        pytest.skip("Prometheus is not running: `--profile observe` (make test-containers starts it)")
    deadline = time.monotonic() + 90
    while True:
        targets = requests.get(compose_stack.url(9090, "/api/v1/targets"), timeout=10).json()["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if all(health.get(job) == "up" for job in JOBS) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert {job: health.get(job) for job in JOBS} == dict.fromkeys(JOBS, "up"), targets
    # Each server's own metrics arrive, not just `up`.
    assert query(compose_stack, "twinserve_gateway_requests_total") or query(compose_stack, 'up{job="gateway"}')
    # TorchServe's series exist only once something was counted, and reach Prometheus at its next scrape.
    torchserve = '{job="torchserve", __name__=~"ts_.*|Requests.*|.*Latency.*"}'
    while not query(compose_stack, torchserve) and time.monotonic() < deadline:
        time.sleep(3)
    assert query(compose_stack, torchserve)
    standin = query(compose_stack, "twinserve_tfserving_standin_info")
    assert bool(standin) == (compose_stack.tf_side == "standin")
