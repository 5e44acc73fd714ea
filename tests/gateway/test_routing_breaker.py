"""routing.plan for every policy, and the circuit breaker driven by an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from gateway.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from gateway.errors import InvalidArgument, Unavailable
from gateway.routing import Plan, pick_weighted, plan, sticky_fraction
from gateway.settings import Route

BOTH = ["torchserve", "tfserving"]


def route(**fields: object) -> Route:
    return Route.model_validate(fields)


def test_pin_policy_and_explicit_pin() -> None:
    r = route(policy="pin", backend="tfserving")
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=BOTH, u=0.0) == Plan("tfserving")
    assert plan("m", r, pin="torchserve", sticky=None, serving=BOTH, usable=BOTH, u=0.0) == Plan("torchserve")
    with pytest.raises(InvalidArgument, match="unknown"):
        plan("m", r, pin="onnx", sticky=None, serving=BOTH, usable=BOTH, u=0.0)
    with pytest.raises(Unavailable, match="not served by tfserving"):
        plan("m", r, pin=None, sticky=None, serving=["torchserve"], usable=BOTH, u=0.0)
    with pytest.raises(Unavailable, match="no serving backend"):
        plan("m", r, pin=None, sticky=None, serving=[], usable=[], u=0.0)


def test_split_by_weight_band_and_sticky_key() -> None:
    r = route(policy="split", weights={"torchserve": 1, "tfserving": 3})
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=BOTH, u=0.24).primary == "torchserve"
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=BOTH, u=0.26).primary == "tfserving"
    # an open circuit takes a backend out of the split; a sticky key ignores u
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=["tfserving"], u=0.0).primary == "tfserving"
    key = "alice"
    want = "torchserve" if sticky_fraction(key) < 0.25 else "tfserving"
    assert {plan("m", r, pin=None, sticky=key, serving=BOTH, usable=BOTH, u=u).primary for u in (0, 0.5, 0.99)} == {
        want
    }
    assert pick_weighted({"torchserve": 0, "tfserving": 0}, BOTH, 0.7) == "torchserve"


def test_shadow_mirrors_to_the_other_only_when_both_serve() -> None:
    r = route(policy="shadow", backend="torchserve")
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=BOTH, u=0) == Plan("torchserve", shadow="tfserving")
    assert plan("m", r, pin=None, sticky=None, serving=["tfserving"], usable=BOTH, u=0) == Plan("tfserving")
    assert plan("m", r, pin="tfserving", sticky=None, serving=BOTH, usable=BOTH, u=0) == Plan("tfserving")


def test_failover_primary_fallback_and_open_circuit() -> None:
    r = route(policy="failover", backend="torchserve")
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=BOTH, u=0) == Plan(
        "torchserve", fallback="tfserving"
    )
    # primary's circuit open: start on the other, keep the primary as the (breaker-guarded) fallback
    assert plan("m", r, pin=None, sticky=None, serving=BOTH, usable=["tfserving"], u=0) == Plan(
        "tfserving", fallback="torchserve"
    )
    assert plan("m", r, pin=None, sticky=None, serving=["tfserving"], usable=BOTH, u=0) == Plan("tfserving")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_and_half_opens_after_cooldown() -> None:
    clock, changes = Clock(), []
    b = CircuitBreaker(3, 10.0, clock=clock, on_change=changes.append)
    b.record_failure()
    b.record_failure()
    assert b.state == CLOSED and b.allow()
    b.record_failure()
    assert b.state == OPEN and not b.allow() and not b.available()
    clock.now += 9.99
    assert not b.allow()
    clock.now += 0.01
    assert b.available() and b.allow() and b.state == HALF_OPEN  # the one probe
    assert not b.allow() and not b.available()  # a second caller waits for the probe
    b.record_failure()  # the probe failed: open again, cool-down restarts from now
    assert b.state == OPEN and b.opened_at == clock.now
    clock.now += 10
    assert b.allow()
    b.record_success()
    assert b.state == CLOSED and b.failures == 0
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_breaker_released_probe_and_health_results() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 5.0, clock=clock)
    b.record_failure()
    clock.now += 5
    assert b.allow()
    b.release_probe()  # the probe never reached the backend: another caller may probe
    assert b.allow()
    b.record_failure()
    b.health_result(True)  # a passing health check does not close before the cool-down
    assert b.state == OPEN
    clock.now += 5
    b.health_result(True)
    assert b.state == CLOSED
    b.health_result(False)
    assert b.state == OPEN
