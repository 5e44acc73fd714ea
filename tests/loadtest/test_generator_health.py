"""The generator monitor sees the CPU of every process in the tree and reports the late-send share."""

from __future__ import annotations

import subprocess
import sys
import time

from loadtest.generator import GeneratorMonitor


def test_monitor_sees_a_busy_child_and_an_idle_one() -> None:
    busy = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 3.0:\n    pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import subprocess, sys, time\n"
                f"child = subprocess.Popen([sys.executable, '-c', {busy!r}])\n"
                "time.sleep(3.0)\nchild.wait(timeout=10)\n"
            ),
        ]
    )
    try:
        mon = GeneratorMonitor(parent.pid)
        t0 = time.perf_counter()
        for _ in range(12):  # bounded: about 2.4 s of sampling
            mon.sample()
            time.sleep(0.2)
        health = mon.health(t0, late=3, sent=200)
    finally:
        parent.wait(timeout=20)
    rows = {r["pid"]: r for r in health["processes"]}
    assert parent.pid in rows and len(rows) == 2
    child = next(r for pid, r in rows.items() if pid != parent.pid)
    assert child["cpu_mean_pct"] > 25.0 > rows[parent.pid]["cpu_mean_pct"]  # generous: the box is shared
    assert health["cpu_pct"] == child["cpu_mean_pct"]
    assert health["late_fraction"] == 3 / 200
