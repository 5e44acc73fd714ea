"""The gateway benchmark's pooled reading of added latency (loadtest.gatewaybench.report): one histogram per target
over every round, beside the median of the rounds. Synthetic points with known answers; nothing is timed."""

from __future__ import annotations

from typing import Any

import numpy as np

from loadtest.gatewaybench.report import added, against_envoy, markdown, pooled_latency
from loadtest.recorder import encode, new_histogram
from loadtest.stats import latency_summary

RNG = np.random.default_rng(16)
ROUNDS = 3


def point(name: str, baseline: str, round_: int, values_us: np.ndarray, with_histogram: bool = True) -> dict[str, Any]:
    h = new_histogram()
    for v in values_us:
        h.record_value(int(v))
    p: dict[str, Any] = {
        "target": {"name": name, "group": "anchor", "baseline": baseline},
        "round": round_,
        "valid": True,
        "latency_ms": {"from_schedule": latency_summary(h)},
    }
    if with_histogram:
        p["histogram"] = encode(h)
    return p


def samples(round_: int, shift_us: float, tail_us: float) -> np.ndarray:
    """1,200 answers: a body that moves from round to round, and a round-dependent tail of 1.5 % of them."""
    body = RNG.normal(4000 + 500 * round_ + shift_us, 300, 1200).clip(1000)
    body[:18] += tail_us * (round_ + 1)
    return body


def run(missing: str | None = None) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    every: dict[str, list[np.ndarray]] = {}
    points = []
    for r in range(ROUNDS):
        for name, base, shift, tail in (
            ("tf-rest-direct", "", 0, 2000),
            ("envoy->tf-rest", "tf-rest-direct", 400, 2500),
            ("gateway-v1->tf-rest", "tf-rest-direct", 600, 4000),
        ):
            values = samples(r, shift, tail)
            every.setdefault(name, []).append(values)
            points.append(point(name, base, r, values, with_histogram=not (name == missing and r == 1)))
    return points, {name: np.concatenate(v) for name, v in every.items()}


def test_pooled_percentiles_are_those_of_every_rounds_answers_together() -> None:
    points, every = run()
    pooled = pooled_latency(points)
    for name, values in every.items():
        whole = new_histogram()
        for v in values:
            whole.record_value(int(v))
        assert pooled[name] == latency_summary(whole)
    hops = added(points)
    for hop in ("envoy->tf-rest", "gateway-v1->tf-rest"):
        want = {
            lbl: round(pooled[hop][k] - pooled["tf-rest-direct"][k], 3)
            for lbl, k in (("p50", "p50"), ("p99", "p99"), ("p99.9", "p99_9"))
        }
        assert hops[hop]["pooled"] == want
        assert hops[hop]["p99"] != want["p99"]  # the median of the rounds is another estimate, kept beside it
    goal = against_envoy(hops)["gateway-v1->tf-rest"]
    assert goal["p99"]["pooled_ratio"] == round(
        hops["gateway-v1->tf-rest"]["pooled"]["p99"] / hops["envoy->tf-rest"]["pooled"]["p99"], 2
    )
    text = markdown({"added_ms": hops, "against_envoy": against_envoy(hops), "ceilings": [], "points": []})
    assert "Pooled over the rounds" in text and f"| gateway-v1->tf-rest | {want['p50']:.3f} |" in text


def test_no_pooled_reading_without_every_rounds_histogram() -> None:
    """A run whose points lack histograms (bench.json before 1 Dec), or one round's, reads as before: no pooled row."""
    points, _ = run(missing="tf-rest-direct")
    assert "tf-rest-direct" not in pooled_latency(points)
    hops = added(points)
    assert all("pooled" not in row for row in hops.values())
    assert all("pooled_ratio" not in r["p50"] for r in against_envoy(hops).values())
    assert "Pooled over the rounds" not in markdown(
        {"added_ms": hops, "against_envoy": {}, "ceilings": [], "points": []}
    )
