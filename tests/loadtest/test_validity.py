"""Each validity rule, broken alone, flips an otherwise VALID point to INVALID with its own reason."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.schedule import Schedule
from loadtest.validity import FULL, QUICK, Evidence, judge

GOOD = Evidence(
    warmup_excluded=150,
    duration_s=20.0,
    completed=1000,
    ok=1000,
    errors=0,
    wrong=0,
    checked=1000,
    late=2,
    sent=1000,
    windows=[(50.0, 10.0), (51.0, 10.4), (49.5, 9.8)],
    generator_cpu_pct=40.0,
)


def test_good_point_is_valid() -> None:
    v = judge(GOOD, QUICK)
    assert v.valid and v.reasons == []
    assert v.late_fraction == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"warmup_excluded": 0}, "warm-up not excluded"),
        ({"duration_s": 9.0}, "too short"),
        ({"completed": 120, "ok": 120, "checked": 120, "sent": 120, "late": 0}, "too few requests"),
        ({"windows": [(50.0, 10.0), (50.0, 10.0)]}, "only 2 complete windows"),
        ({"windows": [(80.0, 10.0), (50.0, 10.0), (50.0, 10.0)]}, "unstable throughput"),
        ({"windows": [(50.0, 10.0), (50.0, 10.0), (50.0, 14.0)]}, "unstable p99"),
        ({"windows": [(50.0, 10.0), (50.0, 10.0), (50.0, None)]}, "unstable p99"),
        ({"generator_cpu_pct": 95.0}, "generator overloaded"),
        ({"late": 30}, "generator late"),
        ({"dropped": 4}, "generator saturated"),
        ({"keep_up": 0.8}, "falling behind: served 80%"),
        ({"checked": 990}, "unchecked answers"),
        ({"wrong": 1, "ok": 999}, "wrong answers"),
        ({"errors": 50, "ok": 950, "checked": 950}, "errors: 5.0%"),
    ],
)
def test_each_rule_flips_the_point(change: dict[str, object], reason: str) -> None:
    v = judge(dataclasses.replace(GOOD, **change), QUICK)  # type: ignore[arg-type]
    assert not v.valid
    assert len(v.reasons) == 1 and reason in v.reasons[0], v.reasons


def test_full_mode_is_stricter() -> None:
    v = judge(GOOD, FULL)
    assert not v.valid and any("too short" in r for r in v.reasons) and any("too few" in r for r in v.reasons)


def test_broken_rules_are_all_kept() -> None:
    bad = dataclasses.replace(GOOD, duration_s=1.0, ok=997, wrong=3, generator_cpu_pct=99.0)
    assert len(judge(bad, QUICK).reasons) == 3


def test_point_from_a_recorder_excludes_warmup_and_judges() -> None:
    epoch = time.time() - 100.0
    rec = Recorder("t", epoch, warmup_s=2.0, window_s=5.0)
    to_perf = time.perf_counter() - time.time()
    for i in range(0, 1700):  # 100 req/s for 17 s: 2 s of warm-up, then 3 full windows
        sched = epoch + i / 100 + 0.002 + to_perf  # 2 ms clear of the window edges
        rec.record(sched, sched, sched + 0.005, "ok")
    point = build_point(
        rec,
        target={"id": "t"},
        load={"rate_rps": 100},
        measured_s=15.0,
        generator={"cpu_pct": 20.0},
        criteria=QUICK,
    )
    assert point["counts"]["warmup"] == 200 and point["counts"]["ok"] == 1500
    assert point["valid"], point["reasons"]
    assert point["achieved_rps"] == pytest.approx(100.0)
    assert point["latency_ms"]["from_schedule"]["p99"] == pytest.approx(5.0, rel=0.01)
    point = build_point(
        rec,
        target={"id": "t"},
        load={"rate_rps": 100},
        measured_s=15.0,
        generator={"cpu_pct": 97.0},
        criteria=QUICK,
    )
    assert not point["valid"] and point["reasons"][0].startswith("generator overloaded")


def _poisson_point(capacity_rps: float | None) -> dict[str, Any]:
    """30 req/s Poisson for 2 + 15 s; with `capacity_rps`, completions are paced at that rate (saturated)."""
    epoch = time.time() - 100.0
    rec = Recorder("t", epoch, warmup_s=2.0, window_s=5.0)
    to_perf = time.perf_counter() - time.time()
    free_at = 0.0
    for off in Schedule(30.0, "poisson", seed=4).offsets(duration_s=17.0):
        done = off + 0.005 if capacity_rps is None else max(off, free_at) + 1 / capacity_rps
        free_at = done
        rec.record(epoch + off + to_perf, epoch + off + to_perf, epoch + done + to_perf, "ok")
    return build_point(
        rec,
        target={"id": "t"},
        load={"rate_rps": 30},
        measured_s=15.0,
        generator={"cpu_pct": 5.0},
        criteria=QUICK,
    )


def test_poisson_noise_is_not_instability_but_saturation_is() -> None:
    kept_up = _poisson_point(None)
    raw = [w["throughput_rps"] for w in kept_up["windows"]][-3:]
    assert max(raw) - min(raw) > 0  # the arrivals themselves vary window to window...
    assert not any("throughput" in r for r in kept_up["reasons"])
    saturated = _poisson_point(24.0)  # ...but a server capped below the offered load falls behind
    assert any(r.startswith("falling behind: served 8") for r in saturated["reasons"]), saturated["reasons"]
