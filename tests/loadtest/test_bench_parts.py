"""The bench's parts without servers: stack discovery, rate search, server counters, Server-Timing, the tail
test for small windows, batching configs, and the decomposition built from them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml

from loadtest.batching import Config, tf_batching_file, torchserve_store
from loadtest.bench import Plan, lowest_rate
from loadtest.point import tail_exceedances
from loadtest.recorder import Recorder
from loadtest.report.analysis import decomposition
from loadtest.report.schema import Decomposition
from loadtest.search import SearchPlan, search
from loadtest.servermetrics import Scraper, counters
from loadtest.stack import from_state
from loadtest.users.codecs import parse_server_timing
from loadtest.validity import QUICK, Evidence, binomial_upper, judge

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
    doc = {"version": 1, "run_dir": str(tmp_path), "host": "0.0.0.0", "tf_side": "standin", "ports": ports}
    path.write_text(json.dumps(doc | {"services": services}), encoding="utf-8")
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


def _point(valid: bool, p99: float) -> dict:
    return {"valid": valid, "reasons": [], "latency_ms": {"from_schedule": {"p99": p99}}}


def test_search_steps_up_then_bisects_to_the_capacity() -> None:
    capacity = 130.0
    asked: list[float] = []

    def measure(rate: float) -> dict:
        asked.append(rate)
        return _point(True, 5.0 if rate <= capacity else 80.0)

    best, points = search(measure, SearchPlan(start=25, max_points=8, resolution=0.1), slo_ms=25)
    assert asked[:4] == [25, 50, 100, 200] and asked[4] == 150
    assert best is not None and 115 <= best <= capacity and len(points) == len(asked) <= 8


def test_search_steps_down_when_the_first_rate_fails_and_never_passes_invalid_points() -> None:
    best, points = search(lambda r: _point(r <= 10, 1.0), SearchPlan(start=40, max_points=3), slo_ms=25)
    assert [p["valid"] for p in points] == [False, False, True] and best == 10.0
    nothing, _ = search(lambda r: _point(False, 1.0), SearchPlan(start=4, max_points=5, min_rate=1), 25)
    assert nothing is None


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


def test_small_windows_are_judged_by_the_binomial_tail_test() -> None:
    assert binomial_upper(100, 0.01, 0.001) == 5
    ev = Evidence(1, 15.0, 300, 300, 0, 0, 300, 0, 300, [(1.0, 10.0), (1.0, 14.0), (1.0, 7.0)], 1.0, 100)
    ev.tail = [(100, 1), (100, 2), (100, 0)]  # p99s differ by 40 %, as 100-sample p99s do: not a stall
    assert judge(ev, QUICK).valid
    ev.tail = [(100, 0), (100, 9), (100, 0)]  # the slow requests bunch in one window: a stall
    assert any("unstable p99" in r for r in judge(ev, QUICK).reasons)


def test_tail_exceedances_count_requests_above_the_pooled_p99() -> None:
    rec = Recorder("t", epoch=0.0, warmup_s=0.0, window_s=1.0)
    rec._perf_to_wall = 0.0
    for w in range(3):
        for i in range(100):
            latency = 0.1 * (i + 1) if w == 1 and i < 8 else 0.001  # a stall: 8 slow answers in window 1
            rec.record(w + i / 200, w + i / 200, w + i / 200 + latency, "ok")
    tail = tail_exceedances(rec, [0, 1, 2])
    assert tail is not None and [n for n, _ in tail] == [100, 100, 100]
    assert tail[0][1] == tail[2][1] == 0 and tail[1][1] >= 2


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
    assert QUICK.measured_s(100.0) == QUICK.min_duration_s  # 1500 requests in 15 s: the minimum duration
    assert QUICK.measured_s(None) == QUICK.min_duration_s  # closed loop
    long = QUICK.measured_s(5.0)  # 300 requests at 5 req/s take 60 s; with 10 % to spare, whole windows
    assert long == 70.0 and long % QUICK.window_s == 0 and 5.0 * long >= 1.1 * QUICK.min_requests


def test_the_rate_search_stops_where_points_would_get_too_long() -> None:
    plan = Plan(models=["digits"], criteria=QUICK, slo_ms={"digits": 25.0})
    floor_rate = lowest_rate(plan)
    assert floor_rate == QUICK.min_requests / (4 * QUICK.min_duration_s) == 5.0
    tried: list[float] = []

    def failing(rate: float) -> None:
        tried.append(rate)

    best, _ = search(failing, SearchPlan(start=50.0, max_points=10, min_rate=floor_rate), 25.0)  # type: ignore[arg-type]
    assert best is None and tried == [50.0, 25.0, 12.5, 6.25, 5.0]  # the lowest rate is tried once
