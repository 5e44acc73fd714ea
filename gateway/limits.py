"""Traffic limits: bounded in-flight calls per backend with a short queue (the body limit: gateway/middleware.py)."""

from __future__ import annotations

import asyncio

from gateway.deadline import Deadline
from gateway.errors import Overloaded


class InFlightLimiter:
    """At most `max_in_flight` concurrent calls; `max_queue` may wait up to `queue_timeout_s`; others 429."""

    def __init__(
        self, backend: str, max_in_flight: int, max_queue: int, queue_timeout_s: float, retry_after_s: float
    ) -> None:
        self.backend = backend
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.waiting = 0
        self._sem = asyncio.Semaphore(max_in_flight)

    def _reject(self, why: str) -> Overloaded:
        return Overloaded(f"{self.backend} {why}", backend=self.backend, retry_after_s=self.retry_after_s)

    async def acquire(self, deadline: Deadline) -> None:
        """Take one in-flight slot (release() gives it back), waiting at most `queue_timeout_s` and never past
        `deadline`: Overloaded (429) when the queue is full or the wait runs out, the deadline's 504 when it passes."""
        if self._sem.locked():
            if self.waiting >= self.max_queue:
                raise self._reject(f"is at its in-flight limit ({self.max_in_flight}) and queue is full")
            wait_s = min(self.queue_timeout_s, deadline.remaining())
            self.waiting += 1
            try:
                await asyncio.wait_for(self._sem.acquire(), max(wait_s, 0.0))
            except TimeoutError:
                if wait_s < self.queue_timeout_s:
                    raise deadline.exceeded(self.backend) from None
                raise self._reject(f"in-flight slot not free within {self.queue_timeout_s}s") from None
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()
        self.in_flight += 1

    def release(self) -> None:
        """Give back the slot taken by acquire()."""
        self.in_flight -= 1
        self._sem.release()
