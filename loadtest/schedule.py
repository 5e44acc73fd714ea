"""Open-loop arrival schedules: when each request *should* be sent, independent of how the server behaves.

Latency is measured from the scheduled send time (as wrk2 and MLPerf LoadGen do), so a server that stalls
cannot hide the stall by slowing the generator down (coordinated omission).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

LATE_THRESHOLD_S = 0.001
"""A send more than this behind its scheduled time counts as late (a generator-health signal)."""


@dataclass(frozen=True)
class Schedule:
    """An arrival process: `constant` (fixed spacing) or `poisson` (exponential gaps, seeded).

    `phase` shifts every arrival (used to interleave the shards of a constant schedule across processes).
    """

    rate: float
    kind: str = "poisson"
    seed: int = 0
    phase: float = 0.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive finite number of requests/s, got {self.rate!r}")
        if self.kind not in ("constant", "poisson"):
            raise ValueError(f"schedule kind must be 'constant' or 'poisson', got {self.kind!r}")

    def offsets(self, duration_s: float | None = None, count: int | None = None) -> Iterator[float]:
        """Yield send offsets in seconds from the start, bounded by `duration_s` and/or `count`."""
        if duration_s is None and count is None:
            raise ValueError("a schedule needs a bound: duration_s, count or both")
        rng = random.Random(self.seed)
        n = 0
        t = self.phase
        while count is None or n < count:
            if self.kind == "constant":
                # Multiply rather than accumulate so spacing stays exact over millions of sends.
                t = self.phase + n / self.rate
            else:
                t += rng.expovariate(self.rate)
            if duration_s is not None and t >= duration_s:
                return
            yield t
            n += 1

    def shard(self, index: int, shards: int) -> Schedule:
        """The part of this schedule that process `index` of `shards` sends; the union equals the whole.

        Poisson: independent Poisson processes of rate r/N superpose to one of rate r.
        Constant: rate r/N, phase-shifted by index/r, so the merged arrivals are evenly spaced at 1/r.
        """
        if not 0 <= index < shards:
            raise ValueError(f"shard index {index} outside 0..{shards - 1}")
        if self.kind == "constant":
            return Schedule(self.rate / shards, "constant", self.seed, self.phase + index / self.rate)
        return Schedule(self.rate / shards, "poisson", self.seed * 1_000_003 + index, self.phase)


@dataclass(frozen=True)
class Tick:
    """One send: when it was scheduled and when the pacer actually released it (perf_counter seconds)."""

    index: int
    scheduled: float
    released: float

    @property
    def lag_s(self) -> float:
        """How far behind schedule the release was (never negative)."""
        return max(0.0, self.released - self.scheduled)


def pace(
    offsets: Iterator[float],
    start: float,
    sleep: Callable[[float], object],
    clock: Callable[[], float] = time.perf_counter,
    spin_s: float = 0.001,
    wait_until: Callable[[float], object] | None = None,
) -> Iterator[Tick]:
    """Release each offset at `start + offset`.

    With `wait_until` (loadtest/timer.py: a wake-up at the exact instant, other greenlets running meanwhile)
    the pacer waits for each due time that is still ahead and never spins. Without it: sleep coarsely, then
    yield-spin the last `spin_s`, because event loops round timers up to whole milliseconds, so a plain sleep
    would make most sends ~1 ms late; the spin (calling `sleep(0)`, which lets other greenlets run) keeps
    releases on time at the price of a busy CPU.
    """
    for i, off in enumerate(offsets):
        due = start + off
        if wait_until is not None:
            if clock() < due:
                wait_until(due)
        else:
            gap = due - clock() - spin_s
            if gap > 0:
                sleep(gap)
            while clock() < due:
                sleep(0)
        yield Tick(i, due, clock())


async def apace(
    offsets: Iterator[float],
    start: float,
    clock: Callable[[], float] = time.perf_counter,
    spin_s: float = 0.001,
) -> AsyncIterator[Tick]:
    """`pace` for asyncio harnesses: the same releases, awaiting `asyncio.sleep` where `pace` calls `sleep`."""
    import asyncio

    for i, off in enumerate(offsets):
        due = start + off
        gap = due - clock() - spin_s
        if gap > 0:
            await asyncio.sleep(gap)
        while clock() < due:
            await asyncio.sleep(0)
        yield Tick(i, due, clock())
