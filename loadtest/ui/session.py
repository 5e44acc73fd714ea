"""One process's part of web-UI runs: a Driver per target user, snapshots to the master, the saved result.

Every ticked target has exactly one user (the swarm hook sets the user count), somewhere in the cluster: that
user drives the target's whole schedule from its own start epoch, checks every answer, and ships its recorder's
snapshot to the master (or, in one process, to itself). The master saves the run once every ticked target has
reported, or shortly after Stop with what arrived: a stopped run is saved too, its points marked short.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtest.drive import Send
from loadtest.generator import GeneratorMonitor
from loadtest.spec import PointSpec
from loadtest.targets import Target
from loadtest.ui.catalog import Catalog
from loadtest.ui.fields import RunConfig
from loadtest.ui.results import write_run
from loadtest.users.base import Driver

REPORT = "twinserve_ui_report"
LEAD_S = 0.5  # the user's calls are prebuilt; half a second lets the first sends start on schedule
STOP_GRACE_S = 15.0  # after Stop, how long the master waits for workers' partial snapshots
log = logging.getLogger("twinserve.ui")


@dataclass
class _Active:
    target: Target
    driver: Driver
    epoch: float
    shipped: bool = False


class UISession:
    """Per-process state of UI runs, attached to the Locust Environment as `environment.twinserve`."""

    def __init__(self, environment: Any, catalog: Catalog, results: Path) -> None:
        self.env = environment
        self.catalog = catalog
        self.results = results
        self.cfg = RunConfig.from_options(environment.parsed_options)
        self.active: list[_Active] = []
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.expected: dict[str, int] = {}
        self.run_no = 0
        self.saved_run = -1
        self.started = datetime.now(UTC)
        self.last_dir: Path | None = None
        self.last_summary: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.monitor: GeneratorMonitor | None = None
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            runner.register_message(REPORT, lambda environment, msg, **_: self._on_report(msg.data))
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.test_stop.add_listener(self._on_test_stop)

    @property
    def is_worker(self) -> bool:
        """Whether this process is a worker (it ships; the master saves)."""
        return isinstance(self.env.runner, WorkerRunner)

    def driver_for(self, user_class: type) -> Driver:
        """A Driver for the target the class is bound to, with this run's settings."""
        t: Target = user_class.target  # type: ignore[attr-defined]  # set by the UI locustfile
        c = self.cfg
        cfg = PointSpec(
            target=t,
            mode=c.mode,
            schedule=c.schedule,
            rate=c.rate,
            concurrency=c.concurrency,
            seed=c.seed,
            warmup_s=c.warmup_s,
            duration_s=c.duration_s,
            window_s=c.window_s,
            batch=c.batch,
            timeout_s=c.timeout_s,
            artifacts=self.catalog.artifacts,
            run_dir=self.catalog.stack.run_dir,
        )
        return Driver(cfg)

    def _on_test_start(self, **_: Any) -> None:
        # The swarm form updated the parsed options; every run starts afresh with them.
        self.cfg = RunConfig.from_options(self.env.parsed_options)
        self.run_no += 1
        self.active, self.reports = [], {}
        self.started = datetime.now(UTC)
        self.monitor = GeneratorMonitor(os.getpid())
        gevent.spawn(self._sample, self.run_no)
        if not self.is_worker:
            self.expected = {}
            for cls in self.env.user_classes:
                self.expected[cls.target.id] = max(1, int(getattr(cls, "fixed_count", 1) or 1))

    def _sample(self, run_no: int) -> None:
        """The generator's CPU once a second while this run lasts (bounded by the longest allowed run)."""
        for _ in range(4000):
            if run_no != self.run_no or self.monitor is None or self.env.runner.state == "stopped":
                return
            self.monitor.sample()
            gevent.sleep(1.0)

    def run(self, driver: Driver, send: Send) -> None:
        """Drive this user's target for warm-up + duration, ship the snapshot, stop the user."""
        entry = _Active(driver.cfg.target, driver, time.time() + LEAD_S)
        self.active.append(entry)
        driver.drive(send, 0, 1, entry.epoch)
        self._ship(entry, complete=True)
        raise StopUser()

    def _ship(self, entry: _Active, complete: bool) -> None:
        if entry.shipped:
            return
        entry.shipped = True
        cfg, rec = entry.driver.cfg, entry.driver.rec
        elapsed = time.time() - entry.epoch - cfg.warmup_s
        measured_s = cfg.duration_s if complete else max(0.0, min(cfg.duration_s, elapsed))
        measured_from = time.perf_counter() - (time.time() - (entry.epoch + cfg.warmup_s))
        counts = rec.totals.counts
        health = self.monitor.health(measured_from, counts["late"], counts["sent"]) if self.monitor else {}
        health.setdefault("cpu_pct", 0.0)
        report = {
            "target": entry.target.id,
            "snapshot": rec.snapshot(),
            "measured_s": measured_s,
            "complete": complete,
            "generator": health,
            "node": os.uname().nodename + f":{os.getpid()}",
            "run": self.run_no,
        }
        if self.is_worker:
            self.env.runner.send_message(REPORT, report)
        else:
            self._on_report(report)

    def _on_report(self, report: dict[str, Any]) -> None:
        if not self.is_worker and isinstance(self.env.runner, MasterRunner):
            report["run"] = self.run_no  # workers count their own runs; the master's count is the run's
        if report.get("run") != self.run_no:
            return
        self.reports.setdefault(report["target"], []).append(report)
        if self._all_in():
            self.save()
            if self.env.runner.state not in ("stopped", "stopping"):
                gevent.spawn_later(0.2, self.env.runner.stop)

    def _all_in(self) -> bool:
        return bool(self.expected) and all(len(self.reports.get(t, [])) >= n for t, n in self.expected.items())

    def _on_test_stop(self, **_: Any) -> None:
        # Stopped by the user (or Locust's run time): the killed users' recorders hold what was measured so far.
        for entry in self.active:
            self._ship(entry, complete=False)
        if not self.is_worker and self.saved_run != self.run_no:
            gevent.spawn(self._save_when_in, self.run_no)

    def _save_when_in(self, run_no: int) -> None:
        deadline = time.monotonic() + (STOP_GRACE_S if isinstance(self.env.runner, MasterRunner) else 0.5)
        while time.monotonic() < deadline and not self._all_in() and run_no == self.run_no:
            gevent.sleep(0.2)
        if run_no == self.run_no:
            self.save()

    def save(self) -> None:
        """Write this run's results (once per run); failures are logged and shown in the twinserve tab."""
        if self.saved_run == self.run_no or self.is_worker:
            return
        self.saved_run = self.run_no
        missing = sorted(t for t in self.expected if t not in self.reports)
        try:
            out, summary = write_run(
                self.reports,
                self.cfg,
                self.catalog,
                self.results,
                self.started,
                workers=self.env.runner.worker_count if isinstance(self.env.runner, MasterRunner) else 0,
                missing=missing,
            )
        except Exception as err:  # the UI must keep running; the tab says what went wrong
            log.exception("twinserve: could not save the UI run")
            self.last_error = f"could not save the run: {err}"
            return
        if out is None:
            self.last_error = "nothing measured: no target reported a snapshot"
            return
        self.last_dir, self.last_summary, self.last_error = out, summary, None
        log.info(f"twinserve: saved this run to {out} (report: {out / 'report.html'})")
