"""Histograms recorded in separate processes, encoded, shipped and merged equal one of all samples."""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import time

import pytest

from loadtest.recorder import Recorder, decode, encode, new_histogram
from loadtest.stats import mean

EPOCH = 1_700_000_000.0
WINDOW_S = 5.0


def _samples(seed: int, n: int = 4000) -> list[tuple[float, float, str]]:
    """(seconds since epoch of completion, latency s, outcome); lognormal latencies, a few errors."""
    rng = random.Random(seed)
    out: list[tuple[float, float, str]] = []
    while len(out) < n:
        t = rng.uniform(0.0, 30.0)
        if min(t % WINDOW_S, WINDOW_S - t % WINDOW_S) < 0.01:
            continue  # keep clear of window edges: each process converts clocks with µs of jitter
        outcome = "errors" if rng.random() < 0.01 else "ok"
        out.append((t, rng.lognormvariate(-5.0, 1.2), outcome))
    return out


def _record(rec: Recorder, samples: list[tuple[float, float, str]]) -> None:
    to_perf = time.perf_counter() - time.time()
    for t, lat, outcome in samples:
        done = EPOCH + t + to_perf
        rec.record(done - lat, done - lat / 2, done, outcome)


def _worker(seed: int) -> str:
    rec = Recorder("torchserve-rest-direct-digits", EPOCH, 0.0, WINDOW_S)
    _record(rec, _samples(seed))
    return json.dumps(rec.snapshot())  # exactly what crosses the process boundary


def test_merge_across_processes_equals_histogram_of_all_samples() -> None:
    seeds = [11, 12, 13]
    with mp.get_context("spawn").Pool(3) as pool:
        shipped = pool.map(_worker, seeds)
    merged = Recorder.merge(json.loads(s) for s in shipped)
    whole = Recorder("torchserve-rest-direct-digits", EPOCH, 0.0, WINDOW_S)
    for seed in seeds:
        _record(whole, _samples(seed))

    for kind in ("from_schedule", "from_send"):
        m, w = getattr(merged.totals, kind), getattr(whole.totals, kind)
        assert m.get_total_count() == w.get_total_count() > 11_000
        for tenth in range(0, 1001):
            p = tenth / 10
            assert m.get_value_at_percentile(p) == w.get_value_at_percentile(p), (kind, p)
        assert m.get_max_value() == w.get_max_value() and m.get_min_value() == w.get_min_value()
    assert merged.totals.counts == whole.totals.counts
    assert sorted(merged.windows) == sorted(whole.windows) == list(range(6))
    for idx, win in whole.windows.items():
        assert merged.windows[idx].counts == win.counts
        assert encode(merged.windows[idx].from_schedule) == encode(win.from_schedule)


def test_encoding_round_trips_and_merge_is_not_an_average() -> None:
    fast, slow = new_histogram(), new_histogram()
    for _ in range(990):
        fast.record_value(1000)
    for _ in range(10):
        slow.record_value(500_000)
    total = decode(encode(fast))
    total.add(decode(encode(slow)))
    assert total.get_total_count() == 1000
    assert total.get_value_at_percentile(99.5) >= 499_000  # an average of the two p99.5s would say ~250 ms


def test_fast_mean_equals_the_library_mean() -> None:
    h = new_histogram()
    rng = random.Random(5)
    for _ in range(5000):
        h.record_value(int(rng.lognormvariate(8.0, 2.0)) + 1)
    assert mean(h) == pytest.approx(h.get_mean_value(), rel=1e-12)


def test_records_at_full_resolution() -> None:
    h = new_histogram()
    h.record_value(12_345)
    assert abs(h.get_value_at_percentile(100) - 12_345) <= 12_345 * 0.001
    h.record_value(59_000_000)
    assert h.get_max_value() >= 58_900_000


def test_merge_rejects_mismatched_windows() -> None:
    a = Recorder("x", EPOCH, 0.0, 5.0).snapshot()
    b = Recorder("x", EPOCH, 0.0, 10.0).snapshot()
    try:
        Recorder.merge([a, b])
    except ValueError:
        return
    raise AssertionError("merging different window lengths must fail")


def test_late_sends_and_the_two_latencies() -> None:
    rec = Recorder("t", time.time() - 10.0)
    now = time.perf_counter()
    rec.record(now, now + 0.0005, now + 0.0105, "ok")  # 0.5 ms behind schedule: on time
    rec.record(now, now + 0.002, now + 0.012, "ok")  # 2 ms behind: late
    rec.record(now, now + 0.003, now + 0.004, "errors")  # late, failed: counted, no latency
    c = rec.totals.counts
    assert (c["late"], c["sent"], c["ok"], c["errors"], c["checked"]) == (2, 3, 2, 1, 2)
    assert rec.totals.from_schedule.get_max_value() == pytest.approx(12_000, rel=0.001)
    assert rec.totals.from_send.get_max_value() == pytest.approx(10_000, rel=0.001)
    assert rec.totals.from_send.get_total_count() == 2
