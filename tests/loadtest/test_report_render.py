"""The report renders from a summary, is self-contained, shows INVALID points with reasons, and the
summary (synthetic or built by the harness) validates against the versioned schema."""

from __future__ import annotations

import copy
import functools
import json
import re
import time
from html import escape
from pathlib import Path

import pydantic
import pytest

from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.report import validate, write_report
from loadtest.report.analysis import best_under_slo, by_model, headline, verdict, within_slo
from loadtest.report.html import render_html
from loadtest.report.schema import Summary
from loadtest.report.synthetic import synthetic_summary as _synthetic
from loadtest.validity import DEFAULT


@functools.cache
def _cached(stand_in: bool) -> str:
    return json.dumps(_synthetic(stand_in=stand_in))


def synthetic_summary(stand_in: bool = True) -> dict:
    """A fresh copy of the (slow to generate) synthetic summary."""
    return json.loads(_cached(stand_in))


SCHEMA_FILE = Path(__file__).resolve().parents[2] / "loadtest" / "report" / "summary.schema.json"


def test_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    summary = synthetic_summary(stand_in=True)
    paths = write_report(summary, tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    assert not re.search(r"https?://", html), "report.html must not reference the network"
    for banned in ("<script", "<link", "@import", "<iframe", "src="):
        assert banned not in html
    assert html.count("<svg") >= 5  # latency-throughput, spectrum, SLO bars, decomposition, Pareto
    assert "sustained" in html and "25 ms p99 SLO" in html
    assert "Stand-in:" in html and "(stand-in)" in html
    invalid = [p for p in summary["points"] if not p["valid"]]
    assert invalid and all(p["reasons"] for p in invalid)
    assert "INVALID</span> " + escape(invalid[0]["reasons"][0]) in html
    md = paths["md"].read_text(encoding="utf-8")
    assert md.splitlines()[2].startswith("**TorchServe") and "| target |" in md
    assert json.loads(paths["summary"].read_text(encoding="utf-8")) == summary


def test_headline_uses_valid_points_under_the_slo_only() -> None:
    summary = synthetic_summary()
    rows = headline(summary)
    assert rows
    valid_ids = {p["target"]["id"] for p in summary["points"] if p["valid"]}
    for r in rows:
        assert r["target"]["id"] in valid_ids and r["p99"] <= summary["run"]["slo_p99_ms"]
    # Make the fastest point of one target INVALID: the headline must fall back to a slower VALID one.
    tid = rows[0]["target"]["id"]
    best = best_under_slo(summary["points"], 25.0)[tid]
    assert best is not None
    best["valid"], best["reasons"] = False, ["generator late: 5.0% of sends > 1 ms behind schedule"]
    best["outcome"] = {"result": "generator", "why": best["reasons"][0]}  # what validity.outcome makes of it
    after = next(r for r in headline(summary) if r["target"]["id"] == tid)
    assert after["rps"] < rows[0]["rps"]


def test_no_stand_in_caveat_for_the_real_server(tmp_path: Path) -> None:
    html = write_report(synthetic_summary(stand_in=False), tmp_path)["html"].read_text(encoding="utf-8")
    assert "stand-in" not in html.lower()


def test_schema_rejects_broken_summaries() -> None:
    good = synthetic_summary()
    validate(good)
    for breakage in ("version", "extra", "missing"):
        bad = copy.deepcopy(good)
        if breakage == "version":
            bad["schema_version"] = "twinserve.loadtest.summary/0"
        elif breakage == "extra":
            bad["points"][0]["p99_average"] = 1.0
        else:
            del bad["points"][0]["reasons"]
        with pytest.raises(pydantic.ValidationError):
            validate(bad)


def test_points_built_by_the_harness_match_the_schema() -> None:
    epoch = time.time() - 60.0
    rec = Recorder("tfserving-grpc-direct:digits", epoch, warmup_s=1.0, window_s=2.0)
    to_perf = time.perf_counter() - time.time()
    for i in range(800):
        s = epoch + i / 100 + 0.002 + to_perf
        rec.record(s, s, s + 0.004, "ok" if i % 50 else "wrong")
    target = {
        "id": "tfserving-grpc-direct:digits",
        "framework": "tfserving",
        "protocol": "grpc",
        "path": "direct",
        "model": "digits",
    }
    point = build_point(
        rec,
        target=target,
        load={"mode": "open", "schedule": "poisson", "rate_rps": 100.0, "batch": 1, "seed": 1},
        measured_s=6.0,
        generator={"cpu_pct": 12.0, "late_sends": 0, "late_fraction": 0.0},
        criteria=DEFAULT,
    )
    summary = synthetic_summary()
    summary["points"] = [point]
    validate(summary)
    assert not point["valid"] and any("wrong answers" in r for r in point["reasons"])


def test_published_json_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == Summary.model_json_schema(), (
        "regenerate: python -m loadtest.report --schema > loadtest/report/summary.schema.json"
    )


def _with_bounds(bounds: dict[str, str]) -> dict:
    """The synthetic summary with the direct targets' brackets bounded as given, per framework."""
    summary = synthetic_summary()
    for tid, b in summary["capacity"].items():
        fw = tid.split("-")[0]
        if fw in bounds and b["passed"] is not None:
            b["bound"] = bounds[fw]
            b["bounded_at"] = None if bounds[fw] == "not reached" else b["passed"] * 1.25  # a tight bracket
    return summary


def test_the_verdict_names_no_winner_when_capacity_was_not_reached() -> None:
    both = verdict(_with_bounds({"torchserve": "not reached", "tfserving": "not reached"}))
    assert "Both sustained the highest rate tried; capacity not reached" in both and "×" not in both
    winner = verdict(_with_bounds({"torchserve": "slo", "tfserving": "slo"}))
    assert "× the rate of" in winner and "p99 over the SLO" in winner


def test_a_harness_limit_is_never_worded_as_the_servers() -> None:
    summary = _with_bounds({"torchserve": "generator", "tfserving": "slo"})
    text = verdict(summary)
    assert "the load generator's limit on this machine, not the server's" in text
    # The synthetic TorchServe is the slower stack: its figure is only a lower bound, so nobody wins.
    assert "No winner can be named: TorchServe's figure is a lower bound" in text
    html = render_html(summary)
    assert "Capacity per target" in html and "not the server&#x27;s" in html


def _three_models() -> dict:
    """The synthetic summary measured on three models: digits as generated; textclf the same points with TF
    Serving's throughput halved (so TorchServe leads there); resnet18 with no TF Serving point under the SLO."""
    summary = _with_bounds({"torchserve": "slo", "tfserving": "slo"})
    extra = []
    for model in ("textclf", "resnet18"):
        for p in copy.deepcopy(summary["points"]):
            fw = p["target"]["framework"]
            p["target"]["model"] = model
            p["target"]["id"] = p["target"]["id"].replace(":digits", f":{model}")
            if model == "textclf" and fw == "tfserving":
                p["achieved_rps"] /= 2
            if model == "resnet18" and fw == "tfserving":
                p["valid"], p["reasons"] = False, ["generator late: 5.0% of sends > 1 ms behind schedule"]
                p["outcome"] = {"result": "generator", "why": p["reasons"][0]}
            extra.append(p)
        for tid, b in list(summary["capacity"].items()):
            bracket = copy.deepcopy(b)
            if model == "textclf" and tid.startswith("tfserving") and bracket["passed"] is not None:
                bracket["passed"] /= 2
                bracket["bounded_at"] = bracket["bounded_at"] and bracket["bounded_at"] / 2
            summary["capacity"][tid.replace(":digits", f":{model}")] = bracket
    summary["points"] += extra
    summary["run"]["slo_p99_ms_by_model"] = {"digits": 25.0, "textclf": 25.0, "resnet18": 25.0}
    return summary


def test_the_report_compares_the_two_stacks_model_by_model(tmp_path: Path) -> None:
    summary = _three_models()
    rows = {r["model"]: r for r in by_model(summary)}
    assert sorted(rows) == ["digits", "resnet18", "textclf"]
    digits_leader = rows["digits"]["conclusion"].split(" sustained")[0]
    assert "× the rate of" in rows["digits"]["conclusion"] and "× the rate of" in rows["textclf"]["conclusion"]
    # Halving TF Serving's throughput on textclf puts TorchServe ahead there, whoever led on digits.
    assert rows["textclf"]["conclusion"].startswith("TorchServe sustained"), rows["textclf"]["conclusion"]
    assert digits_leader in ("TorchServe", "TF Serving (stand-in)")
    assert rows["resnet18"]["best"]["tfserving"] is None and rows["resnet18"]["best"]["torchserve"] is not None
    assert rows["resnet18"]["conclusion"] == "Only one stack has a point within the SLO."
    for model, row in rows.items():
        best = row["best"]["torchserve"]
        direct = [
            p["achieved_rps"]
            for p in summary["points"]
            if (p["target"]["model"], p["target"]["framework"], p["target"]["path"]) == (model, "torchserve", "direct")
            and within_slo(p, 25.0)
        ]
        assert best["rps"] == max(direct), model
    paths = write_report(summary, tmp_path)
    html, md = paths["html"].read_text(encoding="utf-8"), paths["md"].read_text(encoding="utf-8")
    assert "The two stacks, model by model" in html and "The two stacks, model by model" in md
    for model in rows:
        assert f"| {model} | 25 ms |" in md
    assert "no point within the SLO" in md


def test_no_winner_is_named_where_the_capacity_brackets_overlap() -> None:
    """[400, 800) against [550, 1,100): either could be the faster, so the verdict names neither."""
    summary = synthetic_summary()
    for b in summary["capacity"].values():
        if b["passed"] is not None:
            b["bound"], b["bounded_at"] = "slo", b["passed"] * 2
    text = verdict(summary)
    assert "No winner can be named: the capacity brackets overlap" in text and "× the rate of" not in text
    tight = _with_bounds({"torchserve": "slo", "tfserving": "slo"})
    assert "× the rate of" in verdict(tight)
