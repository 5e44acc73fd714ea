"""Find the highest offered rate a target sustains with p99 within its SLO: step up, then bisect.

A rate *passes* when its point is VALID and its p99 (from the scheduled send) is within the SLO. Starting at
`start`, the rate is multiplied by `factor` while it passes (divided while the first ones fail), then the
interval between the highest pass and the lowest failure is bisected until it is narrower than
`resolution` (relative) or `max_points` points have run. Every point, passing or not, goes in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Measure = Callable[[float], dict[str, Any] | None]


@dataclass(frozen=True)
class SearchPlan:
    """Bounds of one target's search."""

    start: float
    factor: float = 2.0
    resolution: float = 0.15
    max_points: int = 6
    min_rate: float = 1.0
    max_rate: float = 5000.0

    def __post_init__(self) -> None:
        if not (self.min_rate <= self.start <= self.max_rate and self.factor > 1 and self.max_points >= 1):
            raise ValueError(f"bad search plan {self}")


def passes(point: dict[str, Any] | None, slo_ms: float) -> bool:
    """VALID and p99 from the scheduled send within the SLO."""
    if point is None or not point["valid"]:
        return False
    p99 = point["latency_ms"]["from_schedule"]["p99"]
    return p99 is not None and p99 <= slo_ms


def search(measure: Measure, plan: SearchPlan, slo_ms: float) -> tuple[float | None, list[dict[str, Any]]]:
    """Run points chosen by the plan; returns (highest passing rate or None, every point measured)."""
    best: float | None = None
    worst: float | None = None  # lowest failing rate
    points: list[dict[str, Any]] = []
    rate = plan.start
    tried: set[float] = set()
    for _ in range(plan.max_points):
        tried.add(rate)
        point = measure(rate)
        if point is not None:
            points.append(point)
        if passes(point, slo_ms):
            best = rate if best is None else max(best, rate)
        else:
            worst = rate if worst is None else min(worst, rate)
        nxt = _next_rate(best, worst, plan)
        if nxt is None or nxt in tried:
            break
        rate = nxt
    return best, points


def _next_rate(best: float | None, worst: float | None, plan: SearchPlan) -> float | None:
    if worst is None:  # everything passed so far: step up
        return None if best is None or best >= plan.max_rate else min(plan.max_rate, round(best * plan.factor, 3))
    if best is None:  # nothing passed yet: step down, trying the lowest rate once before giving up
        return None if worst <= plan.min_rate else round(max(plan.min_rate, worst / plan.factor), 3)
    if worst / best - 1 <= plan.resolution:
        return None
    return round((best + worst) / 2, 3)
