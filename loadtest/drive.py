"""The two ways to drive a target: open loop (on a schedule) and closed loop (fixed concurrency).

Both take `send`, a callable performing one request and returning its outcome ('ok', 'errors' or 'wrong'),
optionally with the durations the server reported in `Server-Timing`.
They need gevent-friendly I/O inside `send` (geventhttpclient, grpc after `init_gevent`), not monkey-patching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import gevent
from gevent import GreenletExit
from gevent.pool import Group

from loadtest.recorder import Recorder
from loadtest.schedule import pace
from loadtest.timer import precise_waiter


@dataclass(frozen=True)
class Result:
    """A send's outcome, when its answer had fully arrived (before the answer check, whose cost is the
    generator's, not the server's), and the durations the server reported (`Server-Timing`, name -> ms)."""

    outcome: str
    done: float | None = None
    timings: dict[str, float] | None = None


Outcome = str | Result
"""'ok' | 'errors' | 'wrong' | 'unchecked', or a Result carrying it."""
Send = Callable[[], Outcome]


def _attempt(send: Send) -> Result:
    try:
        out = send()
    except Exception:
        return Result("errors")
    return Result(out) if isinstance(out, str) else out


def run_open_loop(
    send: Send,
    offsets: Iterable[float],
    rec: Recorder,
    start: float | None = None,
    max_in_flight: int = 2000,
    drain_s: float = 10.0,
    precise: bool = True,
) -> None:
    """Send at `start + offset` for each offset, each in its own greenlet so a slow answer never delays
    the next send; latency is recorded from the scheduled time and from the actual send.

    Past `max_in_flight` outstanding requests a send is dropped and counted (the point becomes INVALID);
    requests still outstanding `drain_s` after the last send are killed and counted as errors.
    `precise`: wait for each send on a timerfd (loadtest/timer.py) where there is one; False: the spin pacer.
    """
    group = Group()

    def one(scheduled: float) -> None:
        sent = time.perf_counter()
        r = _attempt(send)
        rec.record(scheduled, sent, r.done or time.perf_counter(), r.outcome, r.timings)

    t0 = time.perf_counter() if start is None else start
    waiter = precise_waiter() if precise else None  # on time without spinning (loadtest/timer.py)
    try:
        for tick in pace(iter(offsets), t0, gevent.sleep, wait_until=waiter):
            if len(group) >= max_in_flight:
                rec.count("dropped")
                continue
            group.spawn(one, tick.scheduled)
        if waiter is not None:
            waiter.close()
            waiter = None
        if not group.join(timeout=drain_s):
            stuck = len(group)
            group.kill(block=True, timeout=1.0)
            rec.count("errors", stuck)
    except GreenletExit:
        # Stopped from outside (the web UI's Stop, Locust shutting down): the requests still in flight are cut by
        # the generator, not failed by the server, so they count as dropped (unmeasured), never as errors.
        cut = len(group)
        group.kill(block=True, timeout=1.0)
        rec.count("dropped", cut)
        raise
    finally:
        if waiter is not None:
            waiter.close()


def run_closed_loop(
    send: Send, concurrency: int, duration_s: float, rec: Recorder, max_requests: int = 1_000_000
) -> None:
    """perf_analyzer-style: `concurrency` workers each send the next request when the last one returns.

    Latency here runs from the actual send only (scheduled = sent), which is exactly what hides stalls.
    """
    deadline = time.perf_counter() + duration_s
    budget = [max_requests]

    def worker() -> None:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            sent = time.perf_counter()
            r = _attempt(send)
            rec.record(sent, sent, r.done or time.perf_counter(), r.outcome, r.timings)

    group = Group()
    for _ in range(concurrency):
        group.spawn(worker)
    group.join(timeout=duration_s + 30.0)
    group.kill(block=True, timeout=1.0)
