"""What every twinserve Locust user shares: its settings, prebuilt calls, the answer check and the drive loop.

One user per Locust process drives a shard of the arrival schedule (open loop) or a share of the concurrency
(closed loop); it records into the process's Recorder and hands a base64-encoded snapshot to the master.
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass
from pathlib import Path

import gevent

from contract import tskeys
from loadtest.drive import Send, run_closed_loop, run_open_loop
from loadtest.recorder import Recorder
from loadtest.schedule import Schedule
from loadtest.targets import KEY_FILE, Target, parse_target
from loadtest.users.codecs import Call, answer_is_right, calls_for


@dataclass(frozen=True)
class LoadConfig:
    """The `--lt-*` options of the locustfile, one point's worth."""

    target: Target
    mode: str = "open"
    schedule: str = "poisson"
    rate: float = 50.0
    concurrency: int = 1
    seed: int = 1
    warmup_s: float = 3.0
    duration_s: float = 15.0
    window_s: float = 5.0
    batch: int = 1
    timeout_s: float = 10.0
    artifacts: Path = Path("artifacts")
    out: Path | None = None
    key_file: Path = KEY_FILE

    @classmethod
    def from_options(cls, o: argparse.Namespace) -> LoadConfig:
        """Read the parsed `--lt-*` options."""
        return cls(
            parse_target(o.lt_target),
            o.lt_mode,
            o.lt_schedule,
            o.lt_rate,
            o.lt_concurrency,
            o.lt_seed,
            o.lt_warmup,
            o.lt_duration,
            o.lt_window,
            o.lt_batch,
            o.lt_timeout,
            Path(o.lt_artifacts),
            Path(o.lt_out) if o.lt_out else None,
            tskeys.key_file_in(Path(o.lt_run_dir)),
        )


def add_options(parser: argparse.ArgumentParser) -> None:
    """Register the `--lt-*` options (Locust passes its parser to `init_command_line_parser`)."""
    parser.add_argument("--lt-target", default="torchserve-rest-direct:digits", help="target id")
    parser.add_argument("--lt-mode", choices=["open", "closed"], default="open")
    parser.add_argument("--lt-schedule", choices=["poisson", "constant"], default="poisson")
    parser.add_argument("--lt-rate", type=float, default=50.0, help="offered req/s (open loop, all processes)")
    parser.add_argument("--lt-concurrency", type=int, default=1, help="outstanding requests (closed loop)")
    parser.add_argument("--lt-seed", type=int, default=1)
    parser.add_argument("--lt-warmup", type=float, default=3.0, help="seconds sent but excluded")
    parser.add_argument("--lt-duration", type=float, default=15.0, help="measured seconds after warm-up")
    parser.add_argument("--lt-window", type=float, default=5.0, help="stability window seconds")
    parser.add_argument("--lt-batch", type=int, default=1, help="instances per request")
    parser.add_argument("--lt-timeout", type=float, default=10.0, help="per-request timeout seconds")
    parser.add_argument("--lt-artifacts", default="artifacts")
    parser.add_argument("--lt-run-dir", default="run", help="supervisor run dir (TorchServe's key file)")
    parser.add_argument("--lt-out", default="", help="where the master writes the merged snapshot (JSON)")


class Driver:
    """Turns one transport's `exchange(call) -> (ok, body)` into checked, recorded sends."""

    def __init__(self, cfg: LoadConfig):
        self.cfg = cfg
        self.calls: list[Call] = calls_for(cfg.target, cfg.artifacts, cfg.batch)  # built before the clock starts
        self.rec = Recorder(cfg.target.id, time.time(), cfg.warmup_s, cfg.window_s)
        self._next = 0

    def next_call(self) -> Call:
        """Round-robin over the prebuilt calls."""
        call = self.calls[self._next % len(self.calls)]
        self._next += 1
        return call

    def judge(self, call: Call, body: bytes) -> str:
        """'ok' when the answer matches the reference, else 'wrong' (unparseable answers are wrong too)."""
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
            run_open_loop(send, sched.offsets(duration_s=total), self.rec, start=start, drain_s=cfg.timeout_s)
        finally:
            gc.enable()
            gc.unfreeze()
        return self.rec
