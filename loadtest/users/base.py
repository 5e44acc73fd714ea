"""What every twinserve Locust user shares: prebuilt calls, the answer check and the drive loop of one PointSpec.

One user per Locust process drives a shard of the arrival schedule (open loop) or a share of the concurrency
(closed loop); it records into the process's Recorder and hands a base64-encoded snapshot to the master.
"""

from __future__ import annotations

import gc
import time

import gevent

from loadtest.drive import Send, run_closed_loop, run_open_loop
from loadtest.recorder import Recorder
from loadtest.schedule import Schedule
from loadtest.spec import PointSpec
from loadtest.users.codecs import Call, answer_is_right, calls_for

MEMO_BYTES = 32 << 20
"""Answer bytes kept with their verdicts (Driver.judge), per process."""


class Driver:
    """Turns one transport's `exchange(call) -> (ok, body)` into checked, recorded sends."""

    def __init__(self, cfg: PointSpec):
        self.cfg = cfg
        self.calls: list[Call] = calls_for(cfg.target, cfg.artifacts, cfg.batch)  # built before the clock starts
        self.rec = Recorder(cfg.target.id, time.time(), cfg.warmup_s, cfg.window_s)
        self._next = 0
        self.precise_pacer = True
        """False: the spin pacer (the gRPC user's choice, see loadtest/users/grpc_user.py)."""
        self._verdicts: dict[tuple[int, bytes], str] = {}
        self._memo_bytes = 0

    def next_call(self) -> Call:
        """Round-robin over the prebuilt calls."""
        call = self.calls[self._next % len(self.calls)]
        self._next += 1
        return call

    def judge(self, call: Call, body: bytes) -> str:
        """'ok' when the answer matches the reference, else 'wrong' (unparseable answers are wrong too).

        Every answer is checked, but the same bytes for the same call are parsed and compared once: the verdict
        is a function of (call, bytes), and a server answers a given input with a handful of distinct byte
        strings, so the check costs a dictionary lookup instead of a JSON parse and two numpy reductions.
        """
        key = (id(call), body)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._check(call, body)
            if self._memo_bytes + len(body) <= MEMO_BYTES:  # bounded: bodies that keep changing are just checked
                self._verdicts[key] = verdict
                self._memo_bytes += len(body)
        return verdict

    def _check(self, call: Call, body: bytes) -> str:
        try:
            return "ok" if answer_is_right(self.cfg.target, call, body) else "wrong"
        except (ValueError, KeyError, TypeError, IndexError):
            return "wrong"

    def drive(self, send: Send, shard: int, shards: int, epoch: float) -> Recorder:
        """Run this process's part of the point from the shared wall-clock `epoch`; return its recorder."""
        cfg = self.cfg
        total = cfg.warmup_s + cfg.duration_s
        self.rec = Recorder(cfg.target.id, epoch, cfg.warmup_s, cfg.window_s)
        wait = epoch - time.time()
        if wait > 0:
            gevent.sleep(wait)
        if cfg.mode == "closed":
            per_process = max(1, cfg.concurrency // shards + (shard < cfg.concurrency % shards))
            run_closed_loop(send, per_process, total, self.rec)
            return self.rec
        sched = Schedule(cfg.rate, cfg.schedule, cfg.seed).shard(shard, shards)
        start = time.perf_counter() - (time.time() - self.rec.epoch)
        # The cyclic collector can stop this process for milliseconds, and a stopped pacer sends late; what the
        # run allocates is freed by reference counting, so collection waits until the point is over.
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            offsets = sched.offsets(duration_s=total)
            run_open_loop(send, offsets, self.rec, start=start, drain_s=cfg.timeout_s, precise=self.precise_pacer)
        finally:
            gc.enable()
            gc.unfreeze()
        return self.rec
