"""One deadline per request: set once (route or client, whichever is sooner), cut for a failover's primary share,
read by every wait on the way (the in-flight queue, the upstream call) instead of each arming a timeout of its own."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.errors import UpstreamTimeout


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock and what set it (for the 504's message)."""

    at: float
    what: str

    @classmethod
    def after(cls, seconds: float, what: str) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(time.monotonic() + seconds, what)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def cut(self, seconds: float, what: str) -> Deadline:
        """The sooner of this deadline and `seconds` from now."""
        at = time.monotonic() + seconds
        return self if self.at <= at else Deadline(at, what)

    def exceeded(self, backend: str | None = None) -> UpstreamTimeout:
        """The 504 of a request whose deadline passed."""
        return UpstreamTimeout(f"{self.what} passed", backend=backend)
