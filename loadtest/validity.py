"""When a measurement point may be believed, and what it says about the server: DESIGN's "Measurement rules".

Two separate questions, answered separately:
- **Is the measurement sound?** (`judge`) Warm-up excluded, long enough, throughput stable against the offered
  load, the generator healthy, every answer checked, and the server neither erring, answering wrongly, falling
  behind nor drifting. Every broken rule is kept as a reason with its kind (`MEASUREMENT`, `GENERATOR`, `SERVER`),
  so the rate search can tell "measure again" from "the generator's limit" from "the server failed".
- **Is p99 within the SLO?** (`slo_verdict`) A one-sided binomial test on the count of requests slower than the
  SLO, in the manner of MLPerf LoadGen's early stopping: "met" only when the data show p99 <= SLO at the chosen
  confidence, "breached" only when they show p99 > SLO, else "undetermined" (measure longer).

Why not compare window p99s: a p99 from one 5 s window rests on a few dozen requests above it; transients of a
few milliseconds made points far under the SLO INVALID and cut reported capacities threefold (docs/benchmark-method.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any, Final, Literal

MEASUREMENT: Final = "measurement"
"""The point cannot be believed yet: measure it again, longer."""
GENERATOR: Final = "generator"
"""The load generator could not drive this rate: the harness's limit here, not the server's."""
SERVER: Final = "server"
"""The server failed: errors, wrong answers, falling behind, or latency drifting upward."""

Kind = Literal["measurement", "generator", "server"]
SloVerdict = Literal["met", "breached", "undetermined"]
Result = Literal["pass", "fail", "generator", "remeasure"]


@dataclass(frozen=True)
class Criteria:
    """Thresholds a point must meet: `DEFAULT` suits a shared 2-core box, `QUICK` a smoke run, `FULL` a
    dedicated benchmark host."""

    warmup_s: float = 3.0
    """Seconds at the start whose requests are sent but excluded from every number."""
    window_s: float = 3.0
    """Length of the interval windows used for the stability and drift checks (5 in the minimum duration)."""
    min_duration_s: float = 15.0
    """Least measured time (after warm-up)."""
    min_requests: int = 300
    """Least number of completed, measured requests (300 is also the least that can show p99 <= SLO at 95 %
    confidence when no request exceeds it: 0.99^299 < 0.05)."""
    stable_windows: int = 3
    """How many of the last windows must agree on throughput relative to the offered load."""
    stability_tolerance: float = 0.10
    """Largest relative deviation of any of those windows from their mean (and the least share served)."""
    max_generator_cpu_pct: float = 90.0
    """Highest mean CPU of any load-generator process during the measured phase."""
    max_late_fraction: float = 0.01
    """Largest share of sends released more than 1 ms behind schedule (platform stalls excepted)."""
    max_error_rate: float = 0.01
    """Largest share of requests that failed (transport error or bad status)."""
    slo_quantile: float = 0.99
    """The quantile the SLO bounds (p99)."""
    slo_confidence: float = 0.95
    """One-sided confidence with which a point must show p99 within (or beyond) the SLO."""
    drift_tolerance: float = 0.5
    """Largest rise of the windows' median latency across the measured phase, relative to its median."""
    drift_min_ms: float = 2.0
    """Rises smaller than this are never drift (sub-millisecond medians move by noise alone)."""
    drift_slo_share: float = 0.1
    """Nor are rises below this share of the SLO: a queue that grows heads for the SLO, and one that climbs by a
    few percent of it in a whole point is a transient (a server 1 % over capacity climbs ~10 ms every second)."""
    drift_windows: int = 4
    """Fewest complete windows for a trend: with 5, one late window alone moves the Theil-Sen slope not at all."""
    remeasure: int = 2
    """How many times the rate search measures a point again, each twice as long, when it was inconclusive."""

    def measured_s(self, rate_rps: float | None = None) -> float:
        """How long to measure a point: `min_duration_s`, longer where `rate_rps` would not reach
        `min_requests` in that time (10 % to spare), in whole windows so every window is complete."""
        need = self.min_duration_s
        if rate_rps:
            need = max(need, 1.1 * self.min_requests / rate_rps)
        return math.ceil(need / self.window_s - 1e-9) * self.window_s

    def longer(self, attempt: int) -> Criteria:
        """The criteria of the `attempt`-th re-measurement: duration and request count doubled each time."""
        scale = 2**attempt
        return _replace(self, min_duration_s=self.min_duration_s * scale, min_requests=self.min_requests * scale)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for summary.json."""
        return asdict(self)


def _replace(c: Criteria, **changes: Any) -> Criteria:
    return Criteria(**(asdict(c) | changes))


DEFAULT = Criteria()
QUICK = Criteria(warmup_s=1.5, window_s=1.5, min_duration_s=7.5, min_requests=300, remeasure=0)
"""`make bench QUICK=1`: short points at fixed rates, never measured again."""
FULL = Criteria(warmup_s=10.0, window_s=10.0, min_duration_s=60.0, min_requests=5000)
PRESETS = {"default": DEFAULT, "quick": QUICK, "full": FULL}


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
    medians: list[float | None] = field(default_factory=list)
    """Median latency from the scheduled send (ms) per complete window, oldest first: the drift check."""
    generator_cpu_pct: float = 0.0
    dropped: int = 0
    late_explained: int = 0
    slo_ms: float | None = None
    """The model's p99 SLO, which scales what counts as drift (None: no SLO, the other bounds alone)."""
    """Late sends the platform explains (stalls of the generator's CPU, loadtest/stalls.py): not the generator's."""


@dataclass
class Verdict:
    """VALID or INVALID, with every reason found (and its kind) and the rates the report shows."""

    valid: bool
    reasons: list[str]
    error_rate: float
    late_fraction: float
    kinds: list[Kind] = field(default_factory=list)
    """The kind of each reason, in the same order."""


def _spread(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return max(abs(v - mean) for v in values) / mean if mean > 0 else float("inf")


def theil_sen(ys: list[float]) -> float:
    """Median of the slopes between every pair of equally spaced samples: a trend that one outlier cannot make."""
    slopes = [(ys[j] - ys[i]) / (j - i) for i in range(len(ys)) for j in range(i + 1, len(ys))]
    return median(slopes) if slopes else 0.0


def drift_reason(medians: list[float | None], c: Criteria, slo_ms: float | None = None) -> str | None:
    """Latency climbing window over window means the server falls behind: the robust trend of the windows' median
    latency, projected over the measured phase, must stay within the tolerance (relative to the median latency,
    and to the SLO when there is one), whatever the p99 of this point shows yet."""
    ys = [m for m in medians if m is not None]
    if len(ys) < c.drift_windows or len(ys) < len(medians):
        return None
    rise = theil_sen(ys) * (len(ys) - 1)
    allowed = max(c.drift_min_ms, c.drift_tolerance * median(ys), c.drift_slo_share * (slo_ms or 0.0))
    if rise > allowed:
        return (
            f"drift: median latency climbs {rise:.1f} ms over {len(ys)} windows "
            f"({ys[0]:.1f} -> {ys[-1]:.1f} ms; allowed {allowed:.1f} ms)"
        )
    return None


def judge(ev: Evidence, c: Criteria) -> Verdict:
    """Apply every rule to `ev`; a point is VALID only when no reason is found."""
    found: list[tuple[Kind, str]] = []
    error_rate = ev.errors / ev.completed if ev.completed else 0.0
    late_fraction = ev.late / ev.sent if ev.sent else 0.0
    if c.warmup_s > 0 and ev.warmup_excluded == 0:
        found.append((MEASUREMENT, "warm-up not excluded: no request fell in the warm-up period"))
    if ev.duration_s < c.min_duration_s:
        found.append((MEASUREMENT, f"too short: {ev.duration_s:.1f} s measured < {c.min_duration_s:g} s"))
    if ev.completed < c.min_requests:
        found.append((MEASUREMENT, f"too few requests: {ev.completed} < {c.min_requests}"))
    last = ev.windows[-c.stable_windows :]
    if len(last) < c.stable_windows:
        found.append((MEASUREMENT, f"unstable: only {len(last)} complete windows, {c.stable_windows} needed"))
    else:
        tput = _spread([t for t, _ in last])
        if tput > c.stability_tolerance:
            found.append(
                (
                    MEASUREMENT,
                    f"unstable throughput: last {c.stable_windows} windows vary {tput:.1%} "
                    f"> {c.stability_tolerance:.0%}",
                )
            )
    if ev.keep_up is not None and ev.keep_up < 1.0 - c.stability_tolerance:
        found.append((SERVER, f"falling behind: served {ev.keep_up:.0%} of the offered load"))
    drift = drift_reason(ev.medians, c, ev.slo_ms)
    if drift:
        found.append((SERVER, drift))
    if ev.generator_cpu_pct >= c.max_generator_cpu_pct:
        found.append(
            (GENERATOR, f"generator overloaded: CPU {ev.generator_cpu_pct:.0f} % >= {c.max_generator_cpu_pct:g} %")
        )
    own_late = (ev.late - ev.late_explained) / ev.sent if ev.sent else 0.0
    if own_late >= c.max_late_fraction:
        also = f"; platform stalls explain {ev.late_explained / ev.sent:.1%} more" if ev.late_explained else ""
        found.append(
            (
                GENERATOR,
                f"generator late: {own_late:.1%} of sends > 1 ms behind schedule "
                f"(limit {c.max_late_fraction:.0%}{also})",
            )
        )
    if ev.dropped:
        found.append((GENERATOR, f"generator saturated: {ev.dropped} sends dropped at the in-flight cap"))
    if ev.checked < ev.ok + ev.wrong:
        found.append((MEASUREMENT, f"unchecked answers: {ev.ok + ev.wrong - ev.checked} responses not compared"))
    if ev.wrong:
        found.append((SERVER, f"wrong answers: {ev.wrong} responses differ from the reference output"))
    if error_rate > c.max_error_rate:
        found.append((SERVER, f"errors: {error_rate:.1%} of requests failed (limit {c.max_error_rate:.0%})"))
    return Verdict(not found, [r for _, r in found], error_rate, late_fraction, [k for k, _ in found])


def _log_pmf(n: int, k: int, p: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in log space so that n in the hundreds of thousands cannot underflow."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    logs = [_log_pmf(n, i, p) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def slo_verdict(n: int, over: int, c: Criteria) -> SloVerdict:
    """Whether `over` of `n` requests slower than the SLO show p99 within it ("met"), beyond it ("breached"),
    or neither at `c.slo_confidence` ("undetermined": too few requests to tell, or p99 right at the SLO).

    Under p99 = SLO exactly, the count over the SLO is Binomial(n, 1 - quantile); "met" rejects that in favour of
    a smaller share, "breached" in favour of a larger one.
    """
    if n <= 0:
        return "undetermined"
    p, alpha = 1.0 - c.slo_quantile, 1.0 - c.slo_confidence
    if binomial_cdf(over, n, p) <= alpha:
        return "met"
    if 1.0 - binomial_cdf(over - 1, n, p) <= alpha:
        return "breached"
    return "undetermined"


def outcome(v: Verdict, slo: SloVerdict, slo_from_send: SloVerdict, requests: int) -> tuple[Result, str]:
    """What one point says about its rate, for the rate search, with the reason that decided it.

    - "fail": the server's doing: errors or wrong answers; p99 over the SLO even counted from the actual send
      (so no lateness of the generator explains it); falling behind or drifting with a healthy generator; or a
      VALID point whose p99 is over the SLO.
    - "generator": the generator could not drive this rate: the harness's limit here, not the server's.
    - "remeasure": the measurement could not decide (too short, unstable, p99 too close to the SLO): again, longer.
    - "pass": VALID and p99 within the SLO at the chosen confidence.
    """
    by_kind: dict[str, list[str]] = {}
    for kind, reason in zip(v.kinds, v.reasons, strict=True):
        by_kind.setdefault(kind, []).append(reason)
    server, generator = by_kind.get(SERVER, []), by_kind.get(GENERATOR, [])
    hard = [r for r in server if r.startswith(("errors", "wrong answers"))]
    if hard:
        return "fail", hard[0]
    if slo == "breached" and slo_from_send == "breached":
        return "fail", "p99 over the SLO"
    if generator:
        return "generator", generator[0]
    if server:
        return "fail", server[0]
    if v.reasons:
        return "remeasure", v.reasons[0]
    if slo == "met":
        return "pass", "p99 within the SLO"
    if slo == "breached":
        return "fail", "p99 over the SLO"
    return "remeasure", f"p99 too close to the SLO to tell from {requests} requests"
