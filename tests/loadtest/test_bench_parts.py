"""The bench's parts without servers: stack discovery, rate search and its capacity bracket, server counters,
Server-Timing, batching configs, and the decomposition built from them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml

from loadtest.batching import Config, tf_batching_file, torchserve_store
from loadtest.plan import Plan, lowest_rate
from loadtest.report.analysis import decomposition
from loadtest.report.schema import Decomposition
from loadtest.search import Bracket, SearchPlan, bracket_of, search
from loadtest.servermetrics import Scraper, counters
from loadtest.stack import from_state
from loadtest.users.codecs import parse_server_timing
from loadtest.validity import DEFAULT

TS_METRICS = """# HELP ts_inference_requests_total Total number of inference requests.
ts_inference_requests_total{{model_name="digits",model_version="default",hostname="vm",}} {n}
ts_inference_requests_total{{model_name="digits",model_version="1.0",hostname="vm",}} 7.0
ts_inference_latency_microseconds{{model_name="digits",model_version="default",hostname="vm",}} {inf}
ts_queue_latency_microseconds{{model_name="digits",model_version="default",hostname="vm",}} {q}
ts_queue_latency_microseconds{{model_name="resnet18",model_version="default",hostname="vm",}} 99.0
"""
TF_METRICS = """:tensorflow:serving:request_latency_count{{API="Predict",entrypoint="REST",model_name="digits"}} {n}
:tensorflow:serving:request_latency_sum{{API="Predict",entrypoint="REST",model_name="digits"}} {s}
:tensorflow:serving:request_latency_count{{API="Predict",entrypoint="GRPC",model_name="digits"}} 1000
:tensorflow:serving:request_latency_sum{{API="Predict",entrypoint="GRPC",model_name="digits"}} 1e9
"""


def _state(tmp_path: Path, services: dict[str, dict]) -> Path:
    path = tmp_path / "state.json"
    ports = {"ts_inference": 1001, "ts_metrics": 1003, "ts_grpc_inference": 1004, "tf_grpc": 1005}
    ports |= {"tf_rest": 1006, "gateway_rest": 1007, "gateway_grpc": 1008}
    doc = {"version": 1, "run_dir": str(tmp_path), "artifacts": "", "host": "0.0.0.0", "ports": ports}
    record = {"label": "", "pid": 1, "create_time": 0.0, "argv": [], "cwd": "/", "ports": {}}
    record |= {"log": "", "started_at": ""}
    full = {name: record | svc for name, svc in services.items()}  # state.json's full service records
    path.write_text(json.dumps(doc | {"services": full}), encoding="utf-8")
    return path


def test_state_file_gives_ports_and_targets_gateway_only_when_it_runs(tmp_path: Path) -> None:
    up = {"ready": True, "kind": "native"}
    info = from_state(_state(tmp_path, {"torchserve": up, "tfserving": up | {"kind": "standin"}}))
    assert info.tf_side == "standin" and not info.has_gateway
    ids = [t.spec for t in info.targets(["digits"])]
    assert ids == [
        "torchserve-rest-direct:digits@1001",
        "torchserve-grpc-direct:digits@1004",
        "tfserving-rest-direct:digits@1006",
        "tfserving-grpc-direct:digits@1005",
    ]
    both = from_state(_state(tmp_path, {"torchserve": up, "tfserving": up, "gateway": up}))
    gw = both.targets(["digits"], ["*-*-gateway"])
    assert [(t.port, t.host) for t in gw] == [(1007, "127.0.0.1"), (1008, "127.0.0.1")] * 2
    with pytest.raises(FileNotFoundError, match="make up"):
        from_state(tmp_path / "missing.json")


def _point(result: str, rate: float = 0.0, why: str = "") -> dict:
    """A point whose outcome the search reads (the outcome rules themselves: test_validity.py)."""
    why = why or {"pass": "p99 within the SLO", "fail": "p99 over the SLO"}.get(result, result)
    return {"load": {"rate_rps": rate}, "outcome": {"result": result, "why": why}}


def test_search_steps_up_then_bisects_to_the_capacity() -> None:
    capacity = 130.0
    asked: list[float] = []

    def measure(rate: float, attempt: int) -> dict:
        asked.append(rate)
        return _point("pass" if rate <= capacity else "fail", rate)

    bracket, points = search(measure, SearchPlan(start=25, max_points=8, resolution=0.1))
    assert asked[:4] == [25, 50, 100, 200] and asked[4] == pytest.approx(141.421)
    assert bracket.passed is not None and 115 <= bracket.passed <= capacity < (bracket.bounded_at or 0)
    assert bracket.bound == "slo" and len(points) == len(asked) <= 8


def test_search_steps_down_when_the_first_rate_fails_and_never_passes_failing_points() -> None:
    bracket, points = search(lambda r, a: _point("pass" if r <= 10 else "fail", r), SearchPlan(start=40, max_points=3))
    assert [p["outcome"]["result"] for p in points] == ["fail", "fail", "pass"] and bracket.passed == 10.0
    nothing, _ = search(lambda r, a: _point("fail", r), SearchPlan(start=4, max_points=5, min_rate=1))
    assert nothing.passed is None and nothing.bounded_at == 1.0


def test_an_inconclusive_point_is_measured_again_longer_and_the_search_goes_on() -> None:
    asked: list[tuple[float, int]] = []

    def measure(rate: float, attempt: int) -> dict:
        asked.append((rate, attempt))
        if rate == 200 and attempt == 0:  # e.g. "unstable throughput" on a noisy box: not a failure
            return _point("remeasure", rate, "unstable throughput: last 3 windows vary 14.0% > 10%")
        return _point("pass" if rate <= 300 else "fail", rate)

    bracket, points = search(measure, SearchPlan(start=100, max_points=6, resolution=0.2))
    assert asked[:3] == [(100, 0), (200, 0), (200, 1)]  # measured again at the same rate, not stopped there
    assert asked[3] == (400, 0) and bracket.passed is not None and bracket.passed > 200
    assert bracket.bound == "slo" and len(points) == len(asked)


def test_a_rate_still_inconclusive_after_the_bound_is_unresolved_not_a_failure() -> None:
    asked: list[tuple[float, int]] = []

    def measure(rate: float, attempt: int) -> dict:
        asked.append((rate, attempt))
        return _point("pass" if rate < 200 else "remeasure", rate, "p99 too close to the SLO to tell from 900 requests")

    bracket, _ = search(measure, SearchPlan(start=100, max_points=2, remeasure=2))
    assert asked == [(100, 0), (200, 0), (200, 1), (200, 2)]
    assert bracket == Bracket(100.0, 200.0, "unresolved", "p99 too close to the SLO to tell from 900 requests")


def test_a_bracket_bounded_by_the_generator_is_reported_as_the_generators_limit() -> None:
    late = "generator late: 2.1% of sends > 1 ms behind schedule (limit 1%)"
    bracket, _ = search(
        lambda r, a: _point("pass" if r < 400 else "generator", r, late), SearchPlan(start=100, max_points=3)
    )
    assert bracket == Bracket(200.0, 400.0, "generator", late)
    from loadtest.plan import describe

    line = describe(bracket, 100.0)
    assert "generator's limit on this machine, not the server's" in line and "400" in line


def test_brackets_from_fixed_rates_say_when_capacity_was_not_reached() -> None:
    assert bracket_of([_point("pass", 50.0), _point("pass", 100.0)]).bound == "not reached"
    fixed = bracket_of([_point("pass", 50.0), _point("fail", 100.0, "falling behind: served 80% of the offered load")])
    assert fixed.bound == "server" and (fixed.passed, fixed.bounded_at) == (50.0, 100.0)


def test_torchserve_counters_split_queue_and_compute_per_request() -> None:
    pages = iter([TS_METRICS.format(n=10, inf=20_000, q=5_000), TS_METRICS.format(n=110, inf=1_020_000, q=205_000)])
    s = Scraper("torchserve", "digits", "http://x/metrics", fetcher=lambda url: next(pages))
    s.sample(now=1.0)
    s.sample(now=12.0)
    out = s.between(2.0, 11.0)
    assert out is not None and out["requests"] == 100
    assert out["server_ms"] == 10.0 and out["queue_ms"] == 2.0 and out["compute_ms"] == 8.0
    assert counters("torchserve", "digits", "garbage\n")["requests"] == 0


def test_tf_counters_per_entrypoint_and_none_without_latency() -> None:
    pages = iter([TF_METRICS.format(n=0, s=0), TF_METRICS.format(n=50, s=250_000)])
    s = Scraper("tfserving", "digits", "u", entrypoint="REST", fetcher=lambda url: next(pages))
    s.sample(now=0.0)
    s.sample(now=5.0)
    out = s.between(0.0, 5.0)
    assert out is not None and out["server_ms"] == 5.0 and out["queue_ms"] is None
    flat = Scraper("torchserve", "digits", "u", fetcher=lambda url: TS_METRICS.format(n=5, inf=0, q=0))
    flat.sample(now=0.0)
    flat.sample(now=1.0)
    assert flat.between(0.0, 1.0) is None  # requests counted, no latency (gRPC on TorchServe 0.12)


def test_server_timing_header_parses_names_and_durations() -> None:
    assert parse_server_timing("gateway;dur=1.5, upstream;dur=0.75") == {"gateway": 1.5, "upstream": 0.75}
    assert parse_server_timing('db;desc="x";dur="2", miss, bad;dur=abc') == {"db": 2.0}
    assert parse_server_timing(None) == {}


def test_batching_configs_rewrite_copies_never_the_originals(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    manifest = {"model": {"modelName": "digits", "configFile": "digits.yaml"}}
    with zipfile.ZipFile(src / "digits.mar", "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        z.writestr("digits.yaml", "minWorkers: 1\nbatchSize: 16\nresponseTimeout: 30\n")
        z.writestr("weights.pt", b"\x00" * 10)
    store = torchserve_store(src, Config("torchserve", 8, 5000, 2), tmp_path / "store")
    with zipfile.ZipFile(store / "digits.mar") as z:
        cfg = yaml.safe_load(z.read("digits.yaml"))
        assert z.read("weights.pt") == b"\x00" * 10
    assert cfg == {"minWorkers": 2, "maxWorkers": 2, "batchSize": 8, "maxBatchDelay": 5, "responseTimeout": 30}
    with zipfile.ZipFile(src / "digits.mar") as z:
        assert b"batchSize: 16" in z.read("digits.yaml")
    text = tf_batching_file(Config("tfserving", 12, 2000, 2), tmp_path / "b.txt").read_text(encoding="utf-8")
    assert "max_batch_size { value: 12 }" in text and "num_batch_threads { value: 2 }" in text
    assert [ln.split()[-1] for ln in text.splitlines() if ln.startswith("allowed")] == ["1", "2", "4", "8", "12"]


def test_decomposition_parts_are_disjoint_and_come_from_the_measurements() -> None:
    lat = {"p50": 9.0, "p99": 20.0, "mean": 10.0}
    point = {
        "target": {
            "id": "torchserve-rest-gateway:digits",
            "framework": "torchserve",
            "model": "digits",
            "path": "gateway",
        },
        "load": {"rate_rps": 20.0, "batch": 1},
        "valid": True,
        "latency_ms": {"from_send": lat, "from_schedule": lat},
        "server": {"server_ms": 4.0, "queue_ms": 1.0, "compute_ms": 3.0},
        "server_timing_ms": {"gateway": {"mean": 7.0}, "upstream": {"mean": 5.5}},
    }
    summary = {
        "points": [point],
        "floor": [{"framework": "torchserve", "model": "digits", "batch": 1, "latency_ms": {"mean": 0.5}}],
    }
    (row,) = decomposition(summary)
    assert row == {
        "target": "torchserve-rest-gateway:digits",
        "rate_rps": 20.0,
        "total_ms": 10.0,
        "queue_ms": 1.0,
        "compute_ms": 2.5,
        "floor_ms": 0.5,
        "gateway_ms": 1.5,
        "upstream_ms": 1.5,
    }
    Decomposition.model_validate(row)
    parts = sum(v for k, v in row.items() if k.endswith("_ms") and k != "total_ms")
    assert parts == pytest.approx(7.0)  # the other 3 ms: client and network, left unattributed


def test_low_rates_are_measured_long_enough_for_the_minimum_request_count() -> None:
    assert DEFAULT.measured_s(100.0) == DEFAULT.min_duration_s  # 1500 requests in 15 s: the minimum duration
    assert DEFAULT.measured_s(None) == DEFAULT.min_duration_s  # closed loop
    long = DEFAULT.measured_s(5.0)  # 300 requests at 5 req/s take 60 s; with 10 % to spare, whole windows
    assert long == 66.0 and long % DEFAULT.window_s == 0 and 5.0 * long >= 1.1 * DEFAULT.min_requests
    again = DEFAULT.longer(1)  # a re-measurement: twice as long, twice the requests
    assert again.measured_s(100.0) == 2 * DEFAULT.min_duration_s and again.min_requests == 600


def test_the_rate_search_stops_where_points_would_get_too_long() -> None:
    plan = Plan(models=["digits"], criteria=DEFAULT, slo_ms={"digits": 25.0})
    floor_rate = lowest_rate(plan)
    assert floor_rate == DEFAULT.min_requests / (4 * DEFAULT.min_duration_s) == 5.0
    tried: list[float] = []

    def failing(rate: float, attempt: int) -> dict:
        tried.append(rate)
        return _point("fail", rate)

    bracket, _ = search(failing, SearchPlan(start=50.0, max_points=10, min_rate=floor_rate))
    assert bracket.passed is None and tried == [50.0, 25.0, 12.5, 6.25, 5.0]  # the lowest rate is tried once
