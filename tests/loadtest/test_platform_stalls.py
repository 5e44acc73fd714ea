"""Platform stalls (loadtest/stalls.py): the meter sees a real stop of its process, and only late sends a
stall explains are taken off the generator's account."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.point import build_point
from loadtest.pointrun import platform_health
from loadtest.recorder import Recorder
from loadtest.report import write_report
from loadtest.report.analysis import platform_noise
from loadtest.stalls import Meters, Stalls, attribute, common, overlap
from loadtest.validity import DEFAULT, Evidence, judge
from tests.loadtest.test_report_render import synthetic_summary
from tests.loadtest.test_validity import GOOD

REPO = Path(__file__).resolve().parents[2]


def test_overlap_counts_only_the_covered_part() -> None:
    iv = [(1.0, 2.0), (3.0, 3.5), (10.0, 12.0)]
    assert overlap(iv, 0.0, 0.5) == 0.0
    assert overlap(iv, 1.5, 3.25) == pytest.approx(0.75)  # 0.5 of the first + 0.25 of the second
    assert overlap(iv, 0.0, 20.0) == pytest.approx(3.5)
    assert overlap(iv, 11.0, 11.5) == pytest.approx(0.5)  # inside one stall
    assert overlap(iv, 2.0, 3.0) == 0.0  # between stalls
    assert overlap([], 0.0, 1.0) == 0.0


def test_common_keeps_only_stalls_of_every_cpu() -> None:
    a = Stalls(0, "SCHED_FIFO 2", True, 0.0, 10.0, [(1.0, 2.0), (5.0, 6.0)])
    b = Stalls(1, "SCHED_FIFO 2", True, 0.0, 10.0, [(1.5, 3.0), (7.0, 8.0)])
    assert common([a, b]) == [(1.5, 2.0)]
    assert common([a]) == a.intervals
    c = Stalls(2, "SCHED_FIFO 2", True, 0.0, 10.0, [(0.0, 1.6), (1.8, 9.0)])  # one interval spans several
    assert common([a, c]) == [(1.0, 1.6), (1.8, 2.0), (5.0, 6.0)]
    assert common([a, b, c]) == [(1.5, 1.6), (1.8, 2.0)]


def test_a_late_send_is_explained_only_when_the_stall_covers_its_lag() -> None:
    stalls = [(10.0, 10.030)]  # the platform took the CPU for 30 ms
    late_log = [
        (10.005, 10.0302),  # scheduled inside the stall, sent 0.2 ms after it ended: explained
        (9.999, 10.0335),  # 34.5 ms late, 30 ms of it the stall: 4.5 ms its own -> not explained
        (11.0, 11.003),  # late with no stall at all -> not explained
    ]
    att = attribute(late_log, stalls, measured=(9.0, 19.0))
    assert (att.late, att.explained, att.unexplained) == (3, 1, 2)
    assert att.stall_fraction == pytest.approx(0.003)
    assert att.longest_stall_ms == pytest.approx(30.0)


def test_the_meter_records_a_real_stop_of_its_cpu(tmp_path: Path) -> None:
    """SIGSTOP is a stall the meter cannot tell from a hypervisor's: it must record one covering it."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    out = tmp_path / "stalls.json"
    cmd = [sys.executable, "-m", "loadtest.stalls", "--cpu", str(cpu), "--max-s", "20", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO)
    try:
        # pinned means its loop is about to run: wait for that, not for a guess at a loaded machine's start-up time
        deadline = time.monotonic() + 60
        while os.sched_getaffinity(proc.pid) != {cpu}:
            assert proc.poll() is None and time.monotonic() < deadline, "the meter never pinned itself"
            time.sleep(0.05)
        time.sleep(0.3)  # its first wake-ups; the stop below is what it must see
        t_stop = time.perf_counter()
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        proc.send_signal(signal.SIGCONT)
        t_cont = time.perf_counter()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stalls = Stalls.from_dict(json.loads(out.read_text(encoding="utf-8")))
    assert stalls.cpu == cpu and stalls.pinned
    longest = max(stalls.intervals, key=lambda iv: iv[1] - iv[0])
    assert longest[1] - longest[0] >= 0.15, stalls.intervals[-5:]
    assert longest[0] < t_cont and longest[1] > t_stop  # it is the stop we caused, not another hiccup
    assert stalls.stalled_s(t_stop, t_cont + 0.05) >= 0.15


def test_meters_start_and_stop_as_a_group(tmp_path: Path) -> None:
    meters = Meters([sorted(os.sched_getaffinity(0))[-1]], tmp_path, priority=2, max_s=30)
    meters.start()
    time.sleep(0.5)
    seen = meters.stop()
    assert len(seen) == 1 and seen[0].ended > seen[0].started


def test_the_recorder_logs_measured_late_sends_and_merges_them() -> None:
    epoch = time.time()
    start = time.perf_counter() - (time.time() - epoch)
    a, b = Recorder("t", epoch, warmup_s=1.0), Recorder("t", epoch, warmup_s=1.0)
    a.record(start + 0.5, start + 0.51, start + 0.52, "ok")  # warm-up: neither counted nor logged
    a.record(start + 2.0, start + 2.0005, start + 2.01, "ok")  # 0.5 ms behind: on time
    a.record(start + 3.0, start + 3.004, start + 3.01, "ok")  # 4 ms late
    b.record(start + 2.5, start + 2.52, start + 2.6, "errors")  # 20 ms late, failed: still a late send
    merged = Recorder.merge([a.snapshot(), b.snapshot()])
    assert merged.totals.counts["late"] == 2
    assert merged.late_log == [(start + 2.5, start + 2.52), (start + 3.0, start + 3.004)]


def _evidence(late: int, explained: int) -> Evidence:
    return dataclasses.replace(GOOD, late=late, late_explained=explained)


def test_validity_holds_only_unexplained_late_sends_against_the_generator() -> None:
    assert judge(_evidence(late=80, explained=75), DEFAULT).valid  # 0.5 % its own
    v = judge(_evidence(late=80, explained=60), DEFAULT)  # 2 % its own
    assert not v.valid
    assert v.reasons == [
        "generator late: 2.0% of sends > 1 ms behind schedule (limit 1%; platform stalls explain 6.0% more)"
    ]
    assert v.late_fraction == pytest.approx(0.08)  # the point still shows every late send


def test_untrusted_meters_explain_nothing() -> None:
    meters = [Stalls(1, "normal", True, 0.0, 10.0, [(1.0, 1.05)])]  # not real-time: a server could delay it
    late_log = [(1.01, 1.049)]
    assert platform_health(meters, [1], True, late_log, (0.0, 10.0))["late_explained"] == 0
    rt = [Stalls(1, "SCHED_FIFO 2", True, 0.0, 10.0, [(1.0, 1.05)])]
    assert platform_health(rt, [1], True, late_log, (0.0, 10.0))["late_explained"] == 1
    assert platform_health(rt, [1], False, late_log, (0.0, 10.0))["late_explained"] == 0  # generator unpinned


def test_build_point_takes_the_explanation_from_the_generator_block() -> None:
    epoch = time.time() - 100.0
    start = time.perf_counter() - 100.0
    rec = Recorder("torchserve-rest-direct:digits", epoch, warmup_s=1.0, window_s=5.0)
    for i in range(2000):  # 20 s measured at 100 req/s, every 20th send 5 ms late
        s = start + 1.0 + i / 100
        rec.record(s, s + (0.005 if i % 20 == 0 else 0.0001), s + 0.01, "ok")
    rec.record(start + 0.5, start + 0.5, start + 0.51, "ok")  # one warm-up request
    target = {"id": rec.target, "framework": "torchserve", "protocol": "rest", "path": "direct", "model": "digits"}
    load = {"mode": "open", "schedule": "constant", "rate_rps": 100.0, "batch": 1, "seed": 1}
    plat = {"cpus": [1], "meter": "SCHED_FIFO 2", "trusted": True, "stall_fraction": 0.05, "longest_stall_ms": 6.0}
    args = {"target": target, "load": load, "measured_s": 20.0, "criteria": DEFAULT}
    own = build_point(rec, generator={"cpu_pct": 5.0, "platform": plat | {"late_explained": 0}}, **args)
    assert not own["valid"] and any(r.startswith("generator late: 5.0%") for r in own["reasons"])
    explained = build_point(rec, generator={"cpu_pct": 5.0, "platform": plat | {"late_explained": 100}}, **args)
    assert explained["valid"], explained["reasons"]


def test_the_report_warns_about_a_noisy_machine(tmp_path: Path) -> None:
    summary = synthetic_summary()
    for p in summary["points"]:
        p["generator"]["platform"]["stall_fraction"] = 0.12
        p["generator"]["platform"]["late_explained"] = 7
    noise = platform_noise(summary)
    assert noise is not None and noise["noisy"] and noise["late_explained"] == 7 * len(summary["points"])
    paths = write_report(summary, tmp_path)
    assert "Noisy machine:" in paths["md"].read_text(encoding="utf-8")
    html = paths["html"].read_text(encoding="utf-8")
    assert "<b>Platform:</b> The machine itself stalled the load generator&#x27;s CPU for 12.0%" in html
