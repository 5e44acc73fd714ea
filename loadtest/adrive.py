"""`loadtest.drive`'s twin for asyncio harnesses (the gateway benchmark): the same schedule, pacer and recorder.

`send` is a coroutine function returning what `drive`'s senders return ('ok', 'errors', 'wrong', 'unchecked' or
a `drive.Result`); an exception counts as an error, never a dropped request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from loadtest.drive import Outcome, Result
from loadtest.recorder import Recorder
from loadtest.schedule import apace

ASend = Callable[[], Awaitable[Outcome]]

SPIN_S = 0.0015
"""asyncio's timers round up to ~1 ms: the pacer yield-spins this long before each send."""


async def _attempt(send: ASend) -> Result:
    try:
        out = await send()
    except Exception:
        return Result("errors")
    return Result(out) if isinstance(out, str) else out


async def run_open_loop(
    send: ASend,
    offsets: Iterable[float],
    rec: Recorder,
    start: float | None = None,
    max_in_flight: int = 512,
    drain_s: float = 10.0,
) -> None:
    """Send at `start + offset` for each offset, each as its own task so a slow answer never delays the next send;
    latency is recorded from the scheduled time and from the actual send.

    Past `max_in_flight` outstanding requests a send is dropped and counted (the point becomes INVALID);
    requests still outstanding `drain_s` after the last send are cancelled and counted as errors.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        sent = time.perf_counter()
        r = await _attempt(send)
        rec.record(scheduled, sent, r.done or time.perf_counter(), r.outcome, r.timings)

    t0 = time.perf_counter() if start is None else start
    async for tick in apace(iter(offsets), t0, spin_s=SPIN_S):
        if len(tasks) >= max_in_flight:
            rec.count("dropped")
            continue
        task = asyncio.create_task(one(tick.scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, stuck = await asyncio.wait(set(tasks), timeout=drain_s)
        for task in stuck:
            task.cancel()
        if stuck:
            rec.count("errors", len(stuck))


async def run_closed_loop(send: ASend, concurrency: int, duration_s: float) -> int:
    """`concurrency` callers, each sending the next request when the last one returns, for `duration_s`;
    returns how many succeeded (a capacity probe: latency from the actual send hides stalls, so none is kept)."""
    done, stop = 0, time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            r = await _attempt(send)
            done += r.outcome != "errors"

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done
