"""Pooling gateway-benchmark runs: every round of every run counts once, ratios to Envoy come from the pooled
medians, each run keeps its own ratios beside them, and variants are compared round by round."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.gatewaybench import pool
from loadtest.gatewaybench.report import against_envoy


def run(envoy: list[float], gw: list[float], variant: list[float]) -> dict[str, Any]:
    """A bench.json reduced to what pooling reads: per-round added latencies (p99 = 2 x p50, p99.9 = 3 x p50)."""

    def hop(p50: list[float], base: str = "tf-rest-direct") -> dict[str, Any]:
        row: dict[str, Any] = {"baseline": base, "rounds": len(p50), "valid": len(p50)}
        for label, k in (("p50", 1), ("p99", 2), ("p99.9", 3)):
            row[f"{label}_rounds"] = [k * v for v in p50]
            row[label] = sorted(row[f"{label}_rounds"])[len(p50) // 2]
        return row

    hops = {"envoy->tf-rest": hop(envoy), "gateway-v2->tf-rest": hop(gw), "gateway-v2->tf-rest@old": hop(variant)}
    return {"added_ms": hops, "against_envoy": against_envoy(hops)}


RUNS = [
    run(envoy=[0.4, 0.5, 0.6], gw=[0.9, 1.0, 1.1], variant=[1.0, 1.1, 1.0]),  # the gateway at 2x Envoy
    run(envoy=[0.55, 0.9, 1.0], gw=[0.9, 1.0, 1.1], variant=[0.8, 1.2, 1.3]),  # at 1.1x
]


def test_every_round_of_every_run_counts_once() -> None:
    hops = pool.pooled(RUNS)
    assert hops["envoy->tf-rest"]["p50_rounds"] == [0.4, 0.5, 0.6, 0.55, 0.9, 1.0]
    assert hops["envoy->tf-rest"]["p50"] == pytest.approx(0.575)  # not the median of the runs' medians (0.7)
    assert hops["gateway-v2->tf-rest"]["p99"] == pytest.approx(2.0)
    assert (hops["envoy->tf-rest"]["runs"], hops["envoy->tf-rest"]["rounds"]) == (2, 6)


def test_the_goal_is_judged_on_the_pooled_medians_and_each_run_is_shown_too() -> None:
    goal = against_envoy(pool.pooled(RUNS))
    assert goal["gateway-v2->tf-rest"]["p50"]["ratio"] == pytest.approx(1.74)  # 1.0 / 0.575
    text = pool.markdown(RUNS, ["a/bench.json", "b/bench.json"])
    assert "| gateway-v2->tf-rest | 1.74 / 1.74 | 2.0 / 2.0 | 1.11 / 1.11 |" in text
    assert "gateway-v2->tf-rest 1 of 2" in text  # met in the second run only


def test_variants_are_compared_round_by_round() -> None:
    row = pool.against_variants(RUNS)["gateway-v2->tf-rest@old"]
    assert row["against"] == "gateway-v2->tf-rest"
    assert row["p50_diff_rounds"] == [0.1, 0.1, -0.1, -0.1, 0.2, 0.2]
    assert row["p50_diff"] == pytest.approx(0.1) and row["variant_lower"] == 2


def test_the_command_reads_bench_json_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for i, report in enumerate(RUNS):
        (tmp_path / str(i)).mkdir()
        paths.append(tmp_path / str(i) / "bench.json")
        paths[-1].write_text(json.dumps(report), encoding="utf-8")
    assert pool.main([str(p) for p in paths]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 runs, pooled") and "| envoy->tf-rest | tf-rest-direct | 0.575 |" in out
