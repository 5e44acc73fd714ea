"""Faults under open-loop load through a real `python -m gateway`: SIGKILL each stack, a slow/resetting
backend behind our fault proxy, restarts with pooled connections, and a 1-minute soak. The longer runs
with the figures for docs/reliability.md are `make chaos` (reliability/chaos.py)."""

from __future__ import annotations

import pytest

from reliability import scenarios
from supervisor.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("victim", ["torchserve", "tfserving"])
def test_sigkill_primary_under_load_fails_over_and_comes_back(chaos_stack: Stack, victim: str) -> None:
    f = scenarios.kill_under_load(chaos_stack, victim, rate=30.0, duration_s=40.0, kill_at_s=3.0)
    # every request accounted for: answered ok or explicitly, none lost past its timeout
    assert f.sent == f.ok + f.explicit_errors + f.lost
    assert f.lost == 0, f
    assert f.max_latency_s < f.client_timeout_s
    assert f.success_rate_not_in_flight >= 0.999, f
    # 5 failures at 30 req/s open the circuit in ~0.2 s; 5 s is a 25x margin for a loaded 2-core box
    assert f.open_after_kill_s is not None and f.open_after_kill_s < 5.0, f
    assert f.close_after_restart_s is not None, f"circuit never closed after the restart: {f}"
    assert f.victim_share_after_close > 0.5, f"traffic did not return to {victim}: {f}"


def test_slow_backend_times_out_sheds_load_and_stays_bounded(chaos_stack: Stack) -> None:
    f = scenarios.slow_backend(chaos_stack, timeout_s=0.5, overload_rate=40.0, overload_s=3.0)
    assert f.timeout_statuses == {"504": 8}, f
    # the property: it gave up at its timeout rather than waiting for the backend's answer, which the proxy delays
    # to 4x the timeout; a loaded box may add to the timeout, never take from it
    assert max(f.timeout_latency_s) < f.configured_timeout_s * 4, f
    assert min(f.timeout_latency_s) >= f.configured_timeout_s - 0.05, f
    assert f.overload_lost == 0, f
    rejected = int(f.overload_statuses.get("429", 0)) + int(f.overload_statuses.get("503", 0))
    assert rejected > f.overload_sent / 2, f"excess load was not shed: {f}"
    assert f.retry_after_present
    # a rejection waits at most the 0.1 s queue timeout, never for an upstream answer; 1 s leaves a loaded box 10x
    assert f.rejection_p99_ms < 1000, f
    assert f.max_in_flight_seen <= f.max_in_flight, f
    assert f.rss_after_mb < f.rss_before_mb * 1.5 + 20, f
    for statuses in (f.reset_statuses, f.drop_statuses):
        assert set(statuses) <= {"502", "503"}, f


def test_backend_restart_pooled_connections_recover(chaos_stack: Stack) -> None:
    f = scenarios.restart_reconnect(chaos_stack, budget_s=30.0)
    for proto in f.protocols:
        assert set(f.down_statuses[proto]) <= {"502", "503", "504"}, f
        assert f.recovered_after_s[proto] is not None, f"{proto}: no success within 30 s of the restart: {f}"


def test_soak_one_minute_no_errors_bounded_rss(chaos_stack: Stack) -> None:
    f = scenarios.soak(chaos_stack, rate=20.0, duration_s=60.0, warmup_s=10.0)
    assert f.sent == f.ok and f.explicit_errors == 0 and f.lost == 0, f
    assert f.rss_growth < 0.10, f
