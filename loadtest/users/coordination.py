"""Master/worker coordination for one point: a shared start epoch, schedule shards, snapshot merging.

The master (or the single local process) picks a wall-clock epoch a little ahead and tells each worker
its shard; each worker drives its shard, then ships its Recorder snapshot (histograms in HdrHistogram's
compressed base64 form) as a custom message; the master decodes and adds them, writes the merged snapshot
to `--lt-out` and quits as soon as every shard has reported.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

import gevent
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtest.drive import Send
from loadtest.recorder import Recorder
from loadtest.spec import PointSpec
from loadtest.users.base import Driver

START, SNAPSHOT = "twinserve_start", "twinserve_snapshot"
LEAD_S = 2.0  # time for every worker to spawn its user before the first scheduled send
LOCAL_LEAD_S = 0.5  # a single process only needs its own user spawned
log = logging.getLogger("twinserve.loadtest")


class Coordinator:
    """Per-process state of the point, attached to the Locust Environment."""

    def __init__(self, environment: Any):
        self.env = environment
        self.cfg = PointSpec.from_options(environment.parsed_options)
        self.start: dict[str, float] | None = None
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.expected = 1
        self.written = False
        self._driver: Driver | None = None
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.register_message(START, lambda environment, msg, **_: self._on_start(msg.data))
        if isinstance(runner, MasterRunner):
            runner.register_message(SNAPSHOT, lambda environment, msg, **_: self._on_snapshot(msg.node_id, msg.data))
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.quitting.add_listener(lambda **_: self.write())

    def driver(self) -> Driver:
        """The process's Driver (calls prebuilt once, shared by the process's single user)."""
        if self._driver is None:
            self._driver = Driver(self.cfg)
        return self._driver

    def driver_for(self, user_class: type) -> Driver:
        """The Driver of a user of `user_class`: headless, every user shares the point's one `--lt-target`."""
        return self.driver()

    def _on_test_start(self, **_: Any) -> None:
        # The web UI may have changed the --lt-* fields, and may start several runs: begin afresh each time.
        self.cfg = PointSpec.from_options(self.env.parsed_options)
        self._driver, self.snapshots, self.written = None, {}, False
        runner = self.env.runner
        if isinstance(runner, WorkerRunner):
            return
        epoch = time.time() + (LEAD_S if isinstance(runner, MasterRunner) else LOCAL_LEAD_S)
        if isinstance(runner, MasterRunner):
            ids = sorted(runner.clients)
            self.expected = len(ids)
            for i, cid in enumerate(ids):
                runner.send_message(START, {"epoch": epoch, "shard": i, "shards": len(ids)}, client_id=cid)
        else:
            self._on_start({"epoch": epoch, "shard": 0, "shards": 1})

    def _on_start(self, data: dict[str, float]) -> None:
        self.start = data

    def run(self, driver: Driver, send: Send) -> None:
        """Wait for the start message, drive this shard, ship the snapshot, stop this user."""
        for _ in range(600):  # bounded: 60 s for the master's start message
            if self.start is not None:
                break
            gevent.sleep(0.1)
        if self.start is None:
            log.error("no start message from the master within 60 s; this shard sends nothing")
            raise StopUser()
        rec = driver.drive(send, int(self.start["shard"]), int(self.start["shards"]), self.start["epoch"])
        snap = rec.snapshot()
        if isinstance(self.env.runner, WorkerRunner):
            self.env.runner.send_message(SNAPSHOT, snap)
        else:
            self._on_snapshot("local", snap)
        raise StopUser()

    def _on_snapshot(self, node: str, snap: dict[str, Any]) -> None:
        self.snapshots[node] = snap
        if len(self.snapshots) >= self.expected:
            self.write()
            # Headless: the point is done, quit; with the web UI, stop and wait for the next run.
            gevent.spawn_later(0.2, self.env.runner.quit if self.env.web_ui is None else self.env.runner.stop)

    def write(self) -> None:
        """Write the merged snapshot (once) to `--lt-out`; missing shards are recorded, not hidden."""
        if self.written or self.cfg.out is None or isinstance(self.env.runner, WorkerRunner):
            return
        self.written = True
        merged = Recorder.merge(self.snapshots.values()).snapshot() if self.snapshots else None
        doc = {
            "target": self.cfg.target.as_dict(),
            "shards_expected": self.expected,
            "shards_received": len(self.snapshots),
            "snapshot": merged,
        }
        self.cfg.out.parent.mkdir(parents=True, exist_ok=True)
        self.cfg.out.write_text(json.dumps(doc), encoding="utf-8")


class Session(Protocol):
    """What a twinserve user asks of its process: a Driver for its class, and the drive of one point.

    `Coordinator` (headless, one `--lt-target`) and `loadtest.ui.session.UISession` (web UI, a target per
    user class) both are one."""

    def driver_for(self, user_class: type) -> Driver:
        """The Driver (prebuilt calls, recorder) a user of `user_class` sends with."""

    def run(self, driver: Driver, send: Send) -> None:
        """Drive the point with `send`, hand its snapshot on, stop the user."""


def coordinator(environment: Any) -> Session:
    """The Session of this process (created at Locust's `init` event by the locustfile)."""
    coord: Session = environment.twinserve
    return coord
