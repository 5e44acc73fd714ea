"""Schedules: Poisson has the right mean rate and gap spread; constant spacing is exact; shards add up."""

from __future__ import annotations

import itertools
import statistics

import pytest

from loadtest.schedule import Schedule, pace


def test_constant_spacing_is_exact() -> None:
    offs = list(Schedule(250.0, "constant").offsets(count=10_000))
    assert len(offs) == 10_000
    assert offs[0] == 0.0
    assert all(abs(b - a - 0.004) < 1e-12 for a, b in itertools.pairwise(offs))
    assert offs[-1] == pytest.approx(9_999 / 250.0, abs=1e-12)


def test_poisson_mean_rate_and_exponential_gaps() -> None:
    offs = list(Schedule(500.0, "poisson", seed=7).offsets(duration_s=40.0))
    assert len(offs) == pytest.approx(20_000, rel=0.03)  # sd of a Poisson count of 20 000 is 0.7 %
    gaps = [b - a for a, b in itertools.pairwise(offs)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 500.0, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(mean, rel=0.05)  # exponential: sd equals mean
    assert all(g >= 0 for g in gaps)


def test_poisson_is_seeded() -> None:
    a = list(Schedule(100.0, seed=3).offsets(count=500))
    assert a == list(Schedule(100.0, seed=3).offsets(count=500))
    assert a != list(Schedule(100.0, seed=4).offsets(count=500))


def test_bounds_are_respected() -> None:
    assert all(t < 2.0 for t in Schedule(1000.0).offsets(duration_s=2.0))
    assert len(list(Schedule(1000.0, "constant").offsets(duration_s=100.0, count=7))) == 7
    with pytest.raises(ValueError):
        next(Schedule(10.0).offsets())
    with pytest.raises(ValueError):
        Schedule(0.0)
    with pytest.raises(ValueError):
        Schedule(10.0, "bursty")


def test_constant_shards_interleave_into_the_whole() -> None:
    whole = Schedule(300.0, "constant")
    merged = sorted(t for i in range(3) for t in whole.shard(i, 3).offsets(duration_s=5.0))
    assert merged == pytest.approx(list(whole.offsets(duration_s=5.0)), abs=1e-9)


def test_poisson_shards_superpose_to_the_rate() -> None:
    whole = Schedule(400.0, "poisson", seed=1)
    merged = sorted(t for i in range(4) for t in whole.shard(i, 4).offsets(duration_s=30.0))
    assert len(merged) == pytest.approx(12_000, rel=0.04)
    assert len(set(merged)) == len(merged)  # independent shards, not copies of one stream


def test_pace_releases_on_schedule_with_a_fake_clock() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s if s > 0 else 0.0001

    ticks = list(pace(iter([0.0, 0.01, 0.02]), 5.0, sleep, clock=lambda: now[0]))
    assert [t.scheduled for t in ticks] == [5.0, 5.01, 5.02]
    assert all(0 <= t.lag_s < 0.0002 for t in ticks)
    assert sleeps[0] == pytest.approx(5.0 - 0.001)
