"""Find the highest offered rate a target sustains with p99 within its SLO, as a bracket: step up, then bisect.

Each point's outcome (validity.outcome) decides what its rate means:
- "pass": VALID and p99 within the SLO at the chosen confidence. The search steps up (x `factor`).
- "fail": the server's doing (p99 over the SLO, errors, falling behind, drift). An upper bound of capacity.
- "generator": the load generator could not drive this rate. An upper bound of what *this harness* can show here,
  never reported as the server's limit.
- "remeasure": the measurement could not decide. The same rate is measured again, longer (Criteria.longer), up to
  `remeasure` times; still undecided, the rate is "unresolved" and bounds the search like a failure, labelled so.

Then the interval between the highest pass and the lowest bound is bisected (geometric mean) until it is narrower
than `resolution` (relative) or `max_points` rates have been measured. Every point, passing or not, goes in the
report; the `Bracket` says what bounded the search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Measure = Callable[[float, int], dict[str, Any] | None]
"""(rate, attempt) -> the point, or None when the generator produced no result; attempt 0 is the first try."""

BOUNDS = {
    "slo": "p99 over the SLO",
    "server": "the server failed (errors, falling behind or drift)",
    "generator": "the load generator's limit on this machine, not the server's",
    "unresolved": "measurements too noisy to decide, even measured longer",
    "not reached": "capacity not reached: the highest rate tried passed",
}
"""What can bound a target's search, as the report words it."""


@dataclass(frozen=True)
class SearchPlan:
    """Bounds of one target's search."""

    start: float
    factor: float = 2.0
    resolution: float = 0.15
    max_points: int = 7
    """Distinct rates measured at most (re-measurements of one rate count once)."""
    min_rate: float = 1.0
    max_rate: float = 5000.0
    remeasure: int = 2
    """Extra, longer measurements of a rate whose point could not decide."""

    def __post_init__(self) -> None:
        if not (self.min_rate <= self.start <= self.max_rate and self.factor > 1 and self.max_points >= 1):
            raise ValueError(f"bad search plan {self}")


@dataclass(frozen=True)
class Bracket:
    """A target's capacity: at least `passed` req/s (None: no rate passed), below `bounded_at` (None: not found),
    and what bounded it (a key of BOUNDS) with the deciding point's reason."""

    passed: float | None
    bounded_at: float | None
    bound: str
    why: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for summary.json."""
        return asdict(self)


def result_of(point: dict[str, Any] | None) -> tuple[str, str]:
    """The point's (outcome, reason); a point without an outcome (no SLO given) or no point at all: measure again."""
    if point is None:
        return "remeasure", "the generator produced no result"
    out = point.get("outcome")
    if out is None:
        return "remeasure", "no SLO verdict"
    return out["result"], out["why"]


def passes(point: dict[str, Any] | None) -> bool:
    """The point's outcome is a pass: VALID and p99 within the SLO at the chosen confidence."""
    return result_of(point)[0] == "pass"


def bound_of(result: str, why: str) -> str:
    """Which BOUNDS key a non-passing final result stands for."""
    if result == "fail":
        return "slo" if why.startswith("p99 over the SLO") else "server"
    return result  # "generator" or "unresolved"


def search(measure: Measure, plan: SearchPlan) -> tuple[Bracket, list[dict[str, Any]]]:
    """Run points chosen by the plan; returns the capacity bracket and every point measured."""
    best: float | None = None
    ceiling: float | None = None  # lowest rate that did not pass
    points: list[dict[str, Any]] = []
    tried: set[float] = set()
    rate = plan.start
    for _ in range(plan.max_points):
        tried.add(rate)
        result = "remeasure"
        for attempt in range(plan.remeasure + 1):
            point = measure(rate, attempt)
            if point is not None:
                points.append(point)
            result = result_of(point)[0]
            if result != "remeasure":
                break
        if result == "pass":
            best = rate if best is None else max(best, rate)
        elif ceiling is None or rate < ceiling:
            ceiling = rate
        nxt = _next_rate(best, ceiling, plan)
        if nxt is None or nxt in tried:
            break
        rate = nxt
    return bracket_of(points), points


def bracket_of(points: list[dict[str, Any]]) -> Bracket:
    """One target's capacity bracket from its open-loop points in the order measured (the last measurement of
    a rate is its final word; a final "remeasure" is "unresolved"), fixed rates and searches alike."""
    final: dict[float, tuple[str, str]] = {}
    for p in points:
        rate = p["load"].get("rate_rps")
        if rate is not None:
            final[float(rate)] = result_of(p)
    passed = max((r for r, (res, _) in final.items() if res == "pass"), default=None)
    above = sorted(r for r, (res, _) in final.items() if res != "pass" and (passed is None or r > passed))
    if not above:
        return Bracket(passed, None, "not reached", BOUNDS["not reached"])
    result, why = final[above[0]]
    return Bracket(passed, above[0], bound_of("unresolved" if result == "remeasure" else result, why), why)


def _next_rate(best: float | None, worst: float | None, plan: SearchPlan) -> float | None:
    if worst is None:  # everything passed so far: step up
        return None if best is None or best >= plan.max_rate else min(plan.max_rate, round(best * plan.factor, 3))
    if best is None:  # nothing passed yet: step down, trying the lowest rate once before giving up
        return None if worst <= plan.min_rate else round(max(plan.min_rate, worst / plan.factor), 3)
    if worst / best - 1 <= plan.resolution:
        return None
    return round(math.sqrt(best * worst), 3)  # geometric: capacities span decades, their errors are relative


def capacities(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target with judged open-loop points: its capacity bracket (`bracket_of`) as summary.json keeps it."""
    by_target: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        if p["load"].get("rate_rps") is not None and "outcome" in p:
            by_target.setdefault(p["target"]["id"], []).append(p)
    return {tid: bracket_of(pts).as_dict() for tid, pts in sorted(by_target.items())}
