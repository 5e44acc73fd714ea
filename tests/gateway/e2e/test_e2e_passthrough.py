"""TF REST `:predict` in, the TF side over REST out: the gateway validates the body, then forwards its bytes and
hands TF's answer back unchanged, through the core's routing, breaker and metrics; everything else decodes.

A recording tap (tap.py) sits between the gateway and the real TF side, so the tests see what went upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import requests
from e2e_support import ARTIFACTS, Stacks, gateway, metric, wait_for
from gateway_harness import Running
from tap import Tap

SAMPLE = (ARTIFACTS / "samples" / "digits.json").read_bytes()  # {"instances": [...]}, the row form
ROW = [[[0.5] * 8] * 8]  # one digits instance, [1, 8, 8]
ATOL = 1e-4


@contextmanager
def tapped(stacks: Stacks, limits: dict[str, Any] | None = None, **route: Any) -> Iterator[tuple[Tap, Running]]:
    """A gateway whose TF side is spoken to over REST through a tap, with `route` for every model."""
    p = stacks.ports
    tap = Tap(f"http://127.0.0.1:{p.tf_rest}")
    with tap, gateway(stacks, tf_protocol="rest", tf_ports=(tap.port, p.tf_grpc), limits=limits, **route) as gw:
        yield tap, gw


def predict(gw: Running, body: bytes, **headers: str) -> requests.Response:
    headers = {"Content-Type": "application/json", **headers}
    return requests.post(gw.url + "/v1/models/digits:predict", data=body, headers=headers, timeout=30)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_pinned_predict_forwards_the_body_and_returns_the_answer_bytes(
    stacks: Stacks, samples: dict[str, np.ndarray]
) -> None:
    # Fails before the pass-through: the TF side got the gateway's re-encoded columnar body, and the client got a
    # re-encoded answer, not TF's bytes (the tap pretty-prints them as real TF Serving does).
    compact_columnar = json.dumps({"inputs": [[[[1] * 8] * 8]]}, separators=(",", ":")).encode()
    with tapped(stacks, policy="pin", backend="tfserving") as (tap, gw):
        tap.indent = True
        for i, body in enumerate((SAMPLE, compact_columnar)):
            r = predict(gw, body, **{"X-Request-ID": f"pass-{i}"})
            assert r.status_code == 200, r.text
            sent = tap.predicts()[-1]
            assert sent.request == body  # the client's bytes, unchanged
            assert r.content == sent.answer  # TF's answer bytes, unchanged
            assert r.headers["X-Backend"] == "tfserving" and r.headers["X-Request-ID"] == f"pass-{i}"
            assert "upstream;dur=" in r.headers["Server-Timing"]
        n = len(json.loads(SAMPLE)["instances"])
        got = [p["logits"] for p in json.loads(tap.predicts()[0].answer)["predictions"]]
        np.testing.assert_allclose(got, samples["logits"][:n], atol=ATOL)
        # the core counted both: the request and the upstream call
        assert metric(gw.url, 'twinserve_gateway_requests_total{backend="tfserving",model="digits"') == 2
        ok = 'twinserve_gateway_upstream_duration_seconds_count{backend="tfserving",model="digits",outcome="ok"}'
        assert metric(gw.url, ok) == 2


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (dumps({"instances": [[0.5] * 63]}), ["'input'", "shape [1, 63]", "[-1, 1, 8, 8]"]),
        (dumps({"instances": [[[["x"] * 8] * 8]]}), ["'input'", "FP32"]),
        (dumps({"instances": [[[[1e39] * 8] * 8]]}), ["'input'", "FP32"]),
        (dumps({"instances": [[[[True] * 8] * 8]]}), ["'input'", "FP32"]),
        (dumps({"inputs": {"pixels": [ROW]}}), ["unknown input 'pixels'"]),
        (dumps({"instances": [{"pixels": ROW}]}), ["['input']"]),
        (dumps({"instances": []}), ["'instances'"]),
        (dumps({"examples": [ROW]}), ["'instances' or 'inputs'"]),
        (b'{"instances": [', ["not valid JSON"]),
        (b'{"instances": [NaN]}', ["NaN"]),
        (b"[1, 2]", ["JSON object"]),
    ],
)
def test_forwarded_route_still_rejects_client_mistakes_itself(stacks: Stacks, body: bytes, named: list[str]) -> None:
    with tapped(stacks, policy="pin", backend="tfserving") as (tap, gw):
        r = predict(gw, body)
        assert r.status_code == 400, r.text
        for part in named:
            assert part in r.json()["error"], (part, r.json())
        assert tap.predicts() == []  # refused by the gateway: the TF side never saw it


def test_bodies_with_more_than_was_validated_take_the_decoded_path(stacks: Stacks) -> None:
    instance = {"input": ROW}
    bodies = [
        dumps({"signature_name": "serving_default", "instances": [instance]}),  # a signature: ours decides
        dumps({"instances": [{**instance, "extra": 1}]}),  # a key the gateway ignores and TF would refuse
        b'{"instances": [[1]], "instances": ' + dumps([ROW]) + b"}",  # parsers differ on which one counts
        "\ufeff".encode() + dumps({"instances": [ROW]}),  # a BOM: not what TF reads
    ]
    with tapped(stacks, policy="pin", backend="tfserving") as (tap, gw):
        for body in bodies:
            r = predict(gw, body)
            assert r.status_code == 200, (body[:80], r.text)
            assert [sorted(p) for p in r.json()["predictions"]] == [["logits", "probabilities"]]
            sent = json.loads(tap.predicts()[-1].request)
            assert sent["signature_name"] == "serving_default" and list(sent["inputs"]) == ["input"]  # re-encoded


def test_upstream_errors_map_as_on_the_decoded_path_and_open_the_breaker(stacks: Stacks) -> None:
    decoded = dumps({"signature_name": "serving_default", "instances": [ROW]})  # same input, the decoded path
    cases = [
        (400, {"error": "Input to reshape is a tensor with 7 values"}, 400),
        (413, {"error": "too big"}, 400),
        (500, {"error": "boom"}, 502),
        (504, {"error": "late"}, 504),
    ]
    # no health round in between: a healthy probe forgets the failures counted so far
    limits = {"breaker_failures": 6, "breaker_cooldown_s": 60, "health_interval_s": 3600}
    with tapped(stacks, limits=limits, policy="pin", backend="tfserving") as (tap, gw):
        for status, answer, mapped in cases:
            tap.fault = (status, dumps(answer))
            forwarded, via_tensors = predict(gw, SAMPLE), predict(gw, decoded)
            assert tap.predicts()[-2].request == SAMPLE  # the first went the pass-through
            assert forwarded.status_code == via_tensors.status_code == mapped, (status, forwarded.text)
            assert forwarded.json() == via_tensors.json()
            assert "tfserving" in forwarded.json()["error"]
        # 500 and 504 were failures on both paths: four of six; two more pass-through failures open the circuit
        tap.fault = (503, dumps({"error": "down"}))
        assert [predict(gw, SAMPLE).status_code for _ in range(2)] == [502, 502]
        seen = len(tap.predicts())
        r = predict(gw, SAMPLE)
        assert r.status_code == 503 and "circuit open" in r.json()["error"], r.text
        assert len(tap.predicts()) == seen  # refused at the breaker
        outcome = 'twinserve_gateway_upstream_duration_seconds_count{backend="tfserving",model="digits",outcome='
        assert metric(gw.url, outcome + '"upstream_error"}') == 4 and metric(gw.url, outcome + '"timeout"}') == 2


@pytest.mark.parametrize("policy", ["shadow", "failover"])
def test_shadow_and_failover_routes_decode(stacks: Stacks, policy: str) -> None:
    with tapped(stacks, policy=policy, backend="tfserving") as (tap, gw):
        r = predict(gw, SAMPLE)
        assert r.status_code == 200 and r.headers["X-Backend"] == "tfserving", r.text
        sent = json.loads(tap.predicts()[-1].request)
        assert sent["signature_name"] == "serving_default" and "inputs" in sent  # the gateway's own body
        if policy == "shadow":  # the mirror got the decoded tensors
            done = 'twinserve_gateway_shadow_comparisons_total{model="digits"}'
            assert wait_for(lambda: metric(gw.url, done) == 1)


def test_a_pin_header_to_torchserve_decodes(stacks: Stacks, samples: dict[str, np.ndarray]) -> None:
    with tapped(stacks, policy="pin", backend="tfserving") as (tap, gw):
        r = predict(gw, SAMPLE, **{"X-Backend": "torchserve"})
        assert r.status_code == 200 and r.headers["X-Backend"] == "torchserve", r.text
        assert tap.predicts() == []
        n = len(json.loads(SAMPLE)["instances"])
        np.testing.assert_allclose([p["logits"] for p in r.json()["predictions"]], samples["logits"][:n], atol=ATOL)
