"""Per-backend circuit breaker: opens after N consecutive failures, half-open probe after a cool-down."""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """Counts consecutive failures of one backend; while open, requests skip it instead of waiting on it."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.on_change = on_change
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probe_in_flight = False

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change:
                self.on_change(state)

    def allow(self) -> bool:
        """Whether a request may go to this backend now (after the cool-down, one probe at a time)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() - self.opened_at >= self.cooldown_s:
            self._set(HALF_OPEN)
            self._probe_in_flight = False
        if self.state == HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def available(self) -> bool:
        """Like allow() but without taking the half-open probe: used to plan, not to send."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self.clock() - self.opened_at >= self.cooldown_s
        return not self._probe_in_flight

    def retry_in_s(self) -> float:
        """Seconds until an open circuit lets a half-open probe through (0 when it would now)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        """A call (or active health check) succeeded: close the circuit."""
        self.failures = 0
        self._probe_in_flight = False
        self._set(CLOSED)

    def release_probe(self) -> None:
        """The request taken by allow() never reached the backend: let another one probe."""
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """A call failed: open after the threshold, or at once when the half-open probe failed."""
        self.failures += 1
        self._probe_in_flight = False
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._set(OPEN)

    def health_result(self, ok: bool) -> None:
        """An active health check: failures count; success closes an open circuit only after the cool-down."""
        if not ok:
            self.record_failure()
        elif self.state == CLOSED or self.available():
            if self.state != CLOSED:
                self.record_success()
            else:
                self.failures = 0
