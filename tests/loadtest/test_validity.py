"""Each validity rule, broken alone, flips an otherwise VALID point to INVALID with its own reason and kind; the p99
verdict against the SLO is a binomial test, not a comparison of window p99s; and each point's outcome tells the rate
search to measure again, to stop at the generator's limit, or that the server failed."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest

from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.schedule import Schedule
from loadtest.validity import DEFAULT, FULL, QUICK, Evidence, Verdict, binomial_cdf, judge, outcome, slo_verdict

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
    medians=[5.0, 5.2, 4.9],
    generator_cpu_pct=40.0,
)


def test_good_point_is_valid() -> None:
    v = judge(GOOD, DEFAULT)
    assert v.valid and v.reasons == []
    assert v.late_fraction == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("change", "reason", "kind"),
    [
        ({"warmup_excluded": 0}, "warm-up not excluded", "measurement"),
        ({"duration_s": 9.0}, "too short", "measurement"),
        ({"completed": 120, "ok": 120, "checked": 120, "sent": 120, "late": 0}, "too few requests", "measurement"),
        ({"windows": [(50.0, 10.0), (50.0, 10.0)]}, "only 2 complete windows", "measurement"),
        ({"windows": [(80.0, 10.0), (50.0, 10.0), (50.0, 10.0)]}, "unstable throughput", "measurement"),
        ({"medians": [5.0, 7.0, 9.0, 11.5, 14.0]}, "drift: median latency climbs 9.0 ms", "server"),
        ({"generator_cpu_pct": 95.0}, "generator overloaded", "generator"),
        ({"late": 30}, "generator late", "generator"),
        ({"dropped": 4}, "generator saturated", "generator"),
        ({"keep_up": 0.8}, "falling behind: served 80%", "server"),
        ({"checked": 990}, "unchecked answers", "measurement"),
        ({"wrong": 1, "ok": 999}, "wrong answers", "server"),
        ({"errors": 50, "ok": 950, "checked": 950}, "errors: 5.0%", "server"),
    ],
)
def test_each_rule_flips_the_point(change: dict[str, object], reason: str, kind: str) -> None:
    v = judge(dataclasses.replace(GOOD, **change), DEFAULT)  # type: ignore[arg-type]
    assert not v.valid
    assert len(v.reasons) == 1 and reason in v.reasons[0], v.reasons
    assert v.kinds == [kind]


def test_window_p99s_that_differ_are_not_a_reason_any_more() -> None:
    # 40 % apart, as p99s of a few thousand requests are on a shared box: the SLO verdict judges the tail instead
    assert judge(dataclasses.replace(GOOD, windows=[(50.0, 10.0), (50.0, 14.0), (50.0, 18.7)]), DEFAULT).valid


def test_noise_in_window_medians_is_not_drift() -> None:
    wobble = [5.0, 6.1, 4.8, 5.9, 5.1]  # +-1 ms around 5.5 ms: no trend
    assert judge(dataclasses.replace(GOOD, medians=wobble), DEFAULT).valid
    one_spike = [5.0, 5.1, 30.0, 5.0, 5.2]  # one bad window is tail, for the SLO verdict, not a trend
    assert judge(dataclasses.replace(GOOD, medians=one_spike), DEFAULT).valid
    late_spike = [5.0, 5.1, 4.9, 5.0, 10.5]  # not even when it is the last one
    assert judge(dataclasses.replace(GOOD, medians=late_spike), DEFAULT).valid
    assert judge(dataclasses.replace(GOOD, medians=[5.0, 9.0, 14.0]), DEFAULT).valid  # too few windows for a trend


def test_drift_is_measured_against_the_slo_too() -> None:
    # Measured at 200 req/s on TorchServe REST (2026-11-30): the windows' medians climbed ~2.9 ms to 7.7 ms while
    # p99 stayed 10x under the 100 ms SLO, and the rule without the SLO called it drift. A growing queue climbs faster.
    seen = [4.7, 5.1, 5.4, 6.4, 7.7]
    assert not judge(dataclasses.replace(GOOD, medians=seen), DEFAULT).valid  # without an SLO: 2.7 ms allowed
    assert judge(dataclasses.replace(GOOD, medians=seen, slo_ms=100.0), DEFAULT).valid  # 10 % of the SLO: 10 ms
    climbing = [6.0, 15.0, 24.0, 33.0, 42.0]
    assert not judge(dataclasses.replace(GOOD, medians=climbing, slo_ms=100.0), DEFAULT).valid


def test_full_mode_is_stricter() -> None:
    v = judge(GOOD, FULL)
    assert not v.valid and any("too short" in r for r in v.reasons) and any("too few" in r for r in v.reasons)


def test_broken_rules_are_all_kept() -> None:
    bad = dataclasses.replace(GOOD, duration_s=1.0, ok=997, wrong=3, generator_cpu_pct=99.0)
    assert len(judge(bad, DEFAULT).reasons) == 3


def test_the_slo_verdict_is_a_binomial_test_on_the_requests_over_the_slo() -> None:
    assert slo_verdict(300, 0, DEFAULT) == "met"  # 0.99^300 = 4.9 % < 5 %
    assert slo_verdict(200, 0, DEFAULT) == "undetermined"  # 0.99^200 = 13 %: too few requests to tell
    assert slo_verdict(3000, 30, DEFAULT) == "undetermined"  # exactly 1 % over: p99 at the SLO
    assert slo_verdict(3000, 18, DEFAULT) == "met" and slo_verdict(3000, 45, DEFAULT) == "breached"
    assert slo_verdict(0, 0, DEFAULT) == "undetermined"
    assert binomial_cdf(0, 200_000, 0.01) == 0.0 and binomial_cdf(2000, 200_000, 0.01) == pytest.approx(0.5, abs=0.01)


def _verdict(*found: tuple[str, str]) -> Verdict:
    return Verdict(not found, [r for _, r in found], 0.0, 0.0, [k for k, _ in found])  # type: ignore[misc]


def test_the_outcome_tells_measure_again_from_the_generators_limit_from_the_servers_failure() -> None:
    assert outcome(_verdict(), "met", "met", 3000) == ("pass", "p99 within the SLO")
    assert outcome(_verdict(), "breached", "met", 3000) == ("fail", "p99 over the SLO")
    assert outcome(_verdict(), "undetermined", "undetermined", 3000)[0] == "remeasure"
    noisy = ("measurement", "unstable throughput: last 3 windows vary 14.0% > 10%")
    assert outcome(_verdict(noisy), "met", "met", 3000) == ("remeasure", noisy[1])
    late = ("generator", "generator late: 1.2% of sends > 1 ms behind schedule (limit 1%)")
    assert outcome(_verdict(late), "met", "met", 3000) == ("generator", late[1])
    # Over the SLO even from the actual send: the generator's lateness cannot explain it, so the server failed.
    assert outcome(_verdict(late), "breached", "breached", 3000) == ("fail", "p99 over the SLO")
    assert outcome(_verdict(late), "breached", "met", 3000)[0] == "generator"
    behind = ("server", "falling behind: served 80% of the offered load")
    assert outcome(_verdict(behind), "met", "met", 3000) == ("fail", behind[1])
    assert outcome(_verdict(late, behind), "met", "met", 3000)[0] == "generator"  # late sends make it look behind
    errors = ("server", "errors: 5.0% of requests failed (limit 1%)")
    assert outcome(_verdict(late, errors), "met", "met", 3000) == ("fail", errors[1])


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
        criteria=DEFAULT,
        slo_ms=100.0,
    )
    assert point["counts"]["warmup"] == 200 and point["counts"]["ok"] == 1500
    assert point["valid"], point["reasons"]
    assert point["slo"]["over"] == 0 and point["slo"]["verdict"] == "met" and point["outcome"]["result"] == "pass"
    assert point["achieved_rps"] == pytest.approx(100.0)
    assert point["latency_ms"]["from_schedule"]["p99"] == pytest.approx(5.0, rel=0.01)
    point = build_point(
        rec,
        target={"id": "t"},
        load={"rate_rps": 100},
        measured_s=15.0,
        generator={"cpu_pct": 97.0},
        criteria=DEFAULT,
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
        criteria=DEFAULT,
    )


def test_poisson_noise_is_not_instability_but_saturation_is() -> None:
    kept_up = _poisson_point(None)
    raw = [w["throughput_rps"] for w in kept_up["windows"]][-3:]
    assert max(raw) - min(raw) > 0  # the arrivals themselves vary window to window...
    assert not any("throughput" in r for r in kept_up["reasons"])
    saturated = _poisson_point(24.0)  # ...but a server capped below the offered load falls behind
    assert any(r.startswith("falling behind: served 8") for r in saturated["reasons"]), saturated["reasons"]


def _recorded(latency_ms: Callable[[int, int], float], rate: float = 200.0, windows: int = 5) -> dict[str, Any]:
    """A point recorded by the real Recorder: `rate` req/s for 2 s of warm-up plus `windows` 5 s windows, the i-th
    request of window w answered after latency_ms(w, i); judged with the default criteria and a 100 ms SLO."""
    epoch = time.time() - 100.0
    rec = Recorder("t", epoch, warmup_s=2.0, window_s=5.0)
    to_perf = time.perf_counter() - time.time()
    per_window = int(rate * 5)
    for i in range(int(rate * 2)):
        sched = epoch + i / rate + to_perf
        rec.record(sched, sched, sched + 0.005, "ok")
    for w in range(windows):
        for i in range(per_window):
            sched = epoch + 2.0 + 5.0 * w + (i + 0.5) / rate + to_perf
            rec.record(sched, sched, sched + latency_ms(w, i) / 1000.0, "ok")
    return build_point(
        rec,
        target={"id": "t"},
        load={"rate_rps": rate},
        measured_s=5.0 * windows,
        generator={"cpu_pct": 20.0},
        criteria=DEFAULT,
        slo_ms=100.0,
    )


def test_a_point_whose_window_p99s_vary_by_40_percent_far_under_the_slo_is_valid_and_passes() -> None:
    tails = (18.7, 14.7, 26.0, 16.7, 30.1)  # window p99s as issue 17 recorded them: 3-6x under the 100 ms SLO

    def latency(w: int, i: int) -> float:
        return tails[w] if i % 100 == 0 or i % 100 == 50 else 6.0  # 2 % of each window at its tail

    point = _recorded(latency)
    p99s = [row["p99_ms"] for row in point["windows"]]
    assert (max(p99s) - min(p99s)) / min(p99s) > 0.4  # the old rule's INVALID: "unstable p99 ... > 10%"
    assert point["valid"], point["reasons"]
    assert point["slo"]["verdict"] == "met" and point["outcome"] == {"result": "pass", "why": "p99 within the SLO"}


def test_a_point_whose_latency_climbs_window_over_window_is_invalid_for_drift() -> None:
    point = _recorded(lambda w, i: 6.0 + 4.0 * w + i / 200.0)  # a queue building up: 6 ms -> 27 ms
    assert not point["valid"]
    assert any(r.startswith("drift: median latency climbs") for r in point["reasons"]), point["reasons"]
    assert point["reason_kinds"] == ["server"] and point["outcome"]["result"] == "fail"
    flat = _recorded(lambda w, i: 6.0 + (i % 7) / 2.0)
    assert flat["valid"], flat["reasons"]


def test_presets_are_named_for_what_they_are() -> None:
    from loadtest.run import build_parser, make_plan, mode_of

    for flags, mode, preset in (([], "default", DEFAULT), (["--quick"], "quick", QUICK), (["--full"], "full", FULL)):
        args = build_parser().parse_args(flags)
        assert mode_of(args) == mode and make_plan(args).criteria is preset
    assert QUICK.min_duration_s < DEFAULT.min_duration_s < FULL.min_duration_s
    assert QUICK.min_requests >= 300 and QUICK.remeasure == 0  # enough for a p99 verdict; fixed rates, never again
