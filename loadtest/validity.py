"""When a measurement point may be believed: the rules of DESIGN's "Measurement rules", each with its reason.

A point that breaks any rule is INVALID; it keeps every reason, is shown as invalid in the report and is
never used in a headline number or averaged with anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Criteria:
    """Thresholds a point must meet; `QUICK` suits a shared 2-core box, `FULL` a dedicated benchmark run."""

    warmup_s: float = 3.0
    """Seconds at the start whose requests are sent but excluded from every number."""
    window_s: float = 5.0
    """Length of the interval windows used for the stability check."""
    min_duration_s: float = 15.0
    """Least measured time (after warm-up)."""
    min_requests: int = 300
    """Least number of completed, measured requests."""
    stable_windows: int = 3
    """How many of the last windows must agree on throughput and p99."""
    stability_tolerance: float = 0.10
    """Largest relative deviation of any of those windows from their mean."""
    max_generator_cpu_pct: float = 90.0
    """Highest mean CPU of any load-generator process during the measured phase."""
    max_late_fraction: float = 0.01
    """Largest share of sends released more than 1 ms behind schedule."""
    max_error_rate: float = 0.01
    """Largest share of requests that failed (transport error or bad status)."""
    p99_min_window: int = 1000
    """Fewest requests per window for comparing window p99s directly; smaller windows are tested by how
    many of their requests exceed the pooled p99 (binomial test), since a p99 of 100 samples is noise."""
    tail_alpha: float = 0.001
    """False-alarm probability per window of that binomial test."""

    def measured_s(self, rate_rps: float | None = None) -> float:
        """How long to measure a point: `min_duration_s`, longer where `rate_rps` would not reach
        `min_requests` in that time (10 % to spare), in whole windows so every window is complete."""
        need = self.min_duration_s
        if rate_rps:
            need = max(need, 1.1 * self.min_requests / rate_rps)
        return math.ceil(need / self.window_s - 1e-9) * self.window_s

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for summary.json."""
        return asdict(self)


QUICK = Criteria()
FULL = Criteria(warmup_s=10.0, window_s=10.0, min_duration_s=60.0, min_requests=5000)


@dataclass
class Evidence:
    """What the harness observed for one point (measured phase only, warm-up already excluded)."""

    warmup_excluded: int
    """Requests dropped as warm-up; 0 means no warm-up was excluded."""
    duration_s: float
    completed: int
    ok: int
    errors: int
    wrong: int
    checked: int
    """Responses compared with the reference output (must equal `ok + wrong`)."""
    late: int
    sent: int
    windows: list[tuple[float, float | None]] = field(default_factory=list)
    """(throughput, p99 ms) per complete window, oldest first; open loop: throughput / offered load."""
    keep_up: float | None = None
    """Open loop: successful completions / scheduled sends over the complete windows (None: closed loop)."""
    per_window: int = 0
    """Fewest successful requests in a complete window (p99 of a small window is mostly noise)."""
    generator_cpu_pct: float = 0.0
    dropped: int = 0
    tail: list[tuple[int, int]] | None = None
    """Per stability window: (successful requests, how many exceeded the windows' pooled p99)."""
    late_explained: int = 0
    """Late sends the platform explains (stalls of the generator's CPU, loadtest/hiccup.py): not the generator's."""


@dataclass
class Verdict:
    """VALID or INVALID, with every reason found and the rates the report shows."""

    valid: bool
    reasons: list[str]
    error_rate: float
    late_fraction: float


def _spread(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return max(abs(v - mean) for v in values) / mean if mean > 0 else float("inf")


def binomial_upper(n: int, p: float, alpha: float) -> int:
    """Smallest k with P(Binomial(n, p) > k) <= alpha."""
    term = (1.0 - p) ** n  # P(X = 0)
    cdf, k = term, 0
    while 1.0 - cdf > alpha and k < n:
        term *= (n - k) / (k + 1) * p / (1.0 - p)
        k += 1
        cdf += term
    return k


def _tail_reason(ev: Evidence, c: Criteria) -> str | None:
    """Binomial test of small windows: more requests above the pooled p99 than chance allows."""
    for i, (n, k) in enumerate(ev.tail or []):
        limit = binomial_upper(n, 0.01, c.tail_alpha)
        if k > limit:
            return (
                f"unstable p99: a window had {k} of {n} requests above the pooled p99 "
                f"(chance allows {limit} at alpha {c.tail_alpha:g}; window {i + 1} of the last {len(ev.tail or [])})"
            )
    return None


def judge(ev: Evidence, c: Criteria) -> Verdict:
    """Apply every rule to `ev`; a point is VALID only when no reason is found."""
    reasons: list[str] = []
    error_rate = ev.errors / ev.completed if ev.completed else 0.0
    late_fraction = ev.late / ev.sent if ev.sent else 0.0
    if c.warmup_s > 0 and ev.warmup_excluded == 0:
        reasons.append("warm-up not excluded: no request fell in the warm-up period")
    if ev.duration_s < c.min_duration_s:
        reasons.append(f"too short: {ev.duration_s:.1f} s measured < {c.min_duration_s:g} s")
    if ev.completed < c.min_requests:
        reasons.append(f"too few requests: {ev.completed} < {c.min_requests}")
    last = ev.windows[-c.stable_windows :]
    if len(last) < c.stable_windows:
        reasons.append(f"unstable: only {len(last)} complete windows, {c.stable_windows} needed")
    else:
        tput = _spread([t for t, _ in last])
        if tput > c.stability_tolerance:
            reasons.append(
                f"unstable throughput: last {c.stable_windows} windows vary {tput:.1%} > {c.stability_tolerance:.0%}"
            )
        p99s = [p for _, p in last]
        if any(p is None for p in p99s):
            reasons.append("unstable p99: a window had no successful request")
        elif ev.tail is not None and ev.per_window < c.p99_min_window:
            reason = _tail_reason(ev, c)
            if reason:
                reasons.append(reason)
        else:
            p99 = _spread([p for p in p99s if p is not None])
            if p99 > c.stability_tolerance:
                hint = f" (only {ev.per_window} requests in a window)" if 0 < ev.per_window < 1000 else ""
                reasons.append(
                    f"unstable p99: last {c.stable_windows} windows vary {p99:.1%} > {c.stability_tolerance:.0%}{hint}"
                )
    if ev.keep_up is not None and ev.keep_up < 1.0 - c.stability_tolerance:
        reasons.append(f"falling behind: served {ev.keep_up:.0%} of the offered load")
    if ev.generator_cpu_pct >= c.max_generator_cpu_pct:
        reasons.append(f"generator overloaded: CPU {ev.generator_cpu_pct:.0f} % >= {c.max_generator_cpu_pct:g} %")
    own_late = (ev.late - ev.late_explained) / ev.sent if ev.sent else 0.0
    if own_late >= c.max_late_fraction:
        also = f"; platform stalls explain {ev.late_explained / ev.sent:.1%} more" if ev.late_explained else ""
        reasons.append(
            f"generator late: {own_late:.1%} of sends > 1 ms behind schedule (limit {c.max_late_fraction:.0%}{also})"
        )
    if ev.dropped:
        reasons.append(f"generator saturated: {ev.dropped} sends dropped at the in-flight cap")
    if ev.checked < ev.ok + ev.wrong:
        reasons.append(f"unchecked answers: {ev.ok + ev.wrong - ev.checked} responses not compared")
    if ev.wrong:
        reasons.append(f"wrong answers: {ev.wrong} responses differ from the reference output")
    if error_rate > c.max_error_rate:
        reasons.append(f"errors: {error_rate:.1%} of requests failed (limit {c.max_error_rate:.0%})")
    return Verdict(not reasons, reasons, error_rate, late_fraction)
