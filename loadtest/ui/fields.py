"""The web UI's own fields (Locust's "Custom parameters"), what they mean, and the check that runs before a swarm.

Locust's user count and ramp-up do not set twinserve's load: every ticked target gets exactly one user, which
drives that target's whole schedule (open loop: `Rate` requests per second, from the scheduled send time;
closed loop: `Concurrency` outstanding requests). The swarm hook sets both for the user and the UI says so.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadtest.plan import DEFAULT_SLO_MS
from loadtest.pointrun import reachable
from loadtest.spec import DEFAULT_RATE, DEFAULT_TIMEOUT_S
from loadtest.validity import DEFAULT, Criteria

MAX_RATE = 5000.0
"""Per target; the bench's rate search stops there too (search.SearchPlan.max_rate)."""
MAX_DURATION_S = 3600.0


def add_options(parser: Any) -> None:
    """Register the UI's fields; Locust labels each "<Name> (<help>)" under Custom parameters."""
    ui = {"include_in_web_ui": True}
    add = parser.add_argument
    add("--rate", type=float, default=DEFAULT_RATE, help="requests/s offered to EACH ticked target, open loop", **ui)
    add(
        "--loop", choices=["open", "closed"], default="open", help="open: Rate on a schedule; closed: Concurrency", **ui
    )
    add("--concurrency", type=int, default=1, help="outstanding requests per target, closed loop only", **ui)
    add("--arrivals", choices=["poisson", "constant"], default="poisson", help="schedule of the open loop", **ui)
    add("--measured-seconds", type=float, default=30.0, help="after warm-up; then the run stops and is saved", **ui)
    add("--warmup-seconds", type=float, default=DEFAULT.warmup_s, help="sent, not counted", **ui)
    add("--window-seconds", type=float, default=DEFAULT.window_s, help="for the stability and drift checks", **ui)
    add("--batch", type=int, default=1, help="instances per request", **ui)
    add("--request-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds; slower answers are errors", **ui)
    add("--seed", type=int, default=1, help="of the Poisson schedule", **ui)
    add("--twinserve-results", default="results", help="where UI runs are saved", include_in_web_ui=False)


@dataclass(frozen=True)
class RunConfig:
    """One UI run's settings, read from the parsed options the swarm form updated."""

    mode: str
    schedule: str
    rate: float
    concurrency: int
    duration_s: float
    warmup_s: float
    window_s: float
    batch: int
    timeout_s: float
    seed: int

    @classmethod
    def from_options(cls, o: argparse.Namespace) -> RunConfig:
        """Read the `--lt-*` options."""
        return cls(
            o.loop,
            o.arrivals,
            o.rate,
            o.concurrency,
            o.measured_seconds,
            o.warmup_seconds,
            o.window_seconds,
            o.batch,
            o.request_timeout,
            o.seed,
        )

    def criteria(self) -> Criteria:
        """The bench's default rules, with this run's warm-up and window."""
        return Criteria(**(DEFAULT.as_dict() | {"warmup_s": self.warmup_s, "window_s": self.window_s}))

    def load(self, users: int = 1) -> dict[str, Any]:
        """summary.json's `load` of one target driven by `users` users."""
        if self.mode == "closed":
            return {"mode": "closed", "concurrency": self.concurrency * users, "batch": self.batch}
        return {
            "mode": "open",
            "schedule": self.schedule,
            "rate_rps": self.rate * users,
            "batch": self.batch,
            "seed": self.seed,
        }


def slo_ms(model: str) -> float:
    """The p99 SLO a UI point is judged against: the bench's per-model default."""
    return DEFAULT_SLO_MS.get(model, 25.0)


def _number(form: Mapping[str, str], key: str, label: str, kind: type = float) -> tuple[float | None, str | None]:
    raw = form.get(key)
    if raw is None or raw == "":
        return None, None
    try:
        value = kind(raw)
    except ValueError:
        return None, f"{label}: {raw!r} is not {'a whole number' if kind is int else 'a number'}"
    if not math.isfinite(value):
        return None, f"{label}: {raw!r} is not a finite number"
    return value, None


def check(form: Mapping[str, str]) -> list[str]:
    """What is wrong with the swarm form's twinserve fields, one message each (empty: all good)."""
    problems: list[str] = []
    values: dict[str, float | None] = {}
    spec = {
        "rate": ("Rate", float),
        "concurrency": ("Concurrency", int),
        "measured_seconds": ("Measured seconds", float),
        "warmup_seconds": ("Warmup seconds", float),
        "window_seconds": ("Window seconds", float),
        "batch": ("Batch", int),
        "request_timeout": ("Request timeout", float),
        "seed": ("Seed", int),
    }
    for key, (name, kind) in spec.items():
        values[key], error = _number(form, key, name, kind)
        if error:
            problems.append(error)
    mode = form.get("loop", "open")
    if mode not in ("open", "closed"):
        problems.append(f"Loop: {mode!r} is neither 'open' nor 'closed'")
    if form.get("arrivals", "poisson") not in ("poisson", "constant"):
        problems.append(f"Arrivals: {form.get('arrivals')!r} is neither 'poisson' nor 'constant'")
    rate, conc = values["rate"], values["concurrency"]
    if mode == "open" and rate is not None and not 0 < rate <= MAX_RATE:
        problems.append(f"Rate: {rate:g} req/s is outside (0, {MAX_RATE:g}] per target")
    if mode == "closed" and conc is not None and not 1 <= conc <= 512:
        problems.append(f"Concurrency: {conc:g} is outside 1..512 per target")
    duration, warmup, window = values["measured_seconds"], values["warmup_seconds"], values["window_seconds"]
    if window is not None and window <= 0:
        problems.append(f"Window seconds: {window:g} must be > 0")
    if duration is not None and not 0 < duration <= MAX_DURATION_S:
        problems.append(f"Measured seconds: {duration:g} is outside (0, {MAX_DURATION_S:g}]")
    elif duration is not None and window is not None and window > 0 and duration < window:
        problems.append(f"Measured seconds: {duration:g} is shorter than one window ({window:g} s)")
    if warmup is not None and not 0 <= warmup <= 600:
        problems.append(f"Warmup seconds: {warmup:g} is outside 0..600")
    batch, timeout = values["batch"], values["request_timeout"]
    if batch is not None and not 1 <= batch <= 256:
        problems.append(f"Batch: {batch:g} is outside 1..256")
    if timeout is not None and not 0 < timeout <= 120:
        problems.append(f"Request timeout: {timeout:g} s is outside (0, 120]")
    return problems


def check_start(form: Any, classes: Mapping[str, type]) -> tuple[list[str], list[str]]:
    """(problems, ticked class names) of a swarm form: the fields, at least one target ticked, each reachable."""
    problems = check(form)
    ticked = form.getlist("user_classes")
    if not ticked:
        problems.append("Tick at least one target (each class is one target)")
    unknown = [n for n in ticked if n not in classes]
    if unknown:
        problems.append(f"Unknown target class(es): {', '.join(unknown)}")
    for name in ticked:
        cls = classes.get(name)
        if cls is not None and not reachable(cls.target, timeout_s=0.5):  # type: ignore[attr-defined]
            t = cls.target  # type: ignore[attr-defined]
            problems.append(
                f"Cannot reach {name} at {t.host}:{t.port}: nothing listens there (is the stack up? `make up`)"
            )
    return problems, ticked
