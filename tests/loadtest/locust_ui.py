"""Drive `python -m loadtest.webui` from tests: start it (as `make locust` does), wait for it, use its HTTP API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHORT = {"warmup_seconds": "1", "window_seconds": "1", "measured_seconds": "4", "arrivals": "constant"}
"""A short run: long enough to check every answer and write a results run, not to be VALID."""


def start(state: Path, results: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m loadtest.webui --state STATE --results RESULTS ARGS...`, output to `log`."""
    cmd = [sys.executable, "-m", "loadtest.webui", "--state", str(state), "--results", str(results), *args]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate one UI process this test started (by its pid) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def get(url: str) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def wait_up(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    """Until the UI answers (or its process died: the log says why)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the UI exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            get(base + "/twinserve/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise AssertionError(f"the UI did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


def swarm(base: str, classes: list[str], users: int, **fields: str) -> dict[str, Any]:
    """POST /swarm as the start form does (class picker + custom parameters)."""
    form: list[tuple[str, str]] = [("user_classes", c) for c in classes]
    form += [("user_count", str(users)), ("spawn_rate", str(users)), ("host", ""), *fields.items()]
    req = urllib.request.Request(base + "/swarm", data=urllib.parse.urlencode(form).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def post(base: str, path: str) -> None:
    """POST without a body (/stop)."""
    urllib.request.urlopen(urllib.request.Request(base + path, data=b"", method="POST"), timeout=30).read()


def wait_saved(base: str, previous: str | None = None, timeout_s: float = 120.0) -> dict[str, Any]:
    """Until the UI reports a saved run other than `previous`; returns /twinserve/status."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    failed: list[str] = []
    while time.monotonic() < deadline:
        try:
            status = get(base + "/twinserve/status")
        except (urllib.error.URLError, ConnectionError) as err:
            failed.append(repr(err))  # kept for the message; a UI that died fails at the deadline
            time.sleep(0.5)
            continue
        if (status["run_dir"] and status["run_dir"] != previous) or status["error"]:
            return status
        time.sleep(0.5)
    raise AssertionError(f"no run saved within {timeout_s} s: {status}; failed polls: {failed[-3:]}")


def wait_settled(base: str, timeout_s: float = 30.0) -> None:
    """Until no run is in progress (Locust caches /stats/requests for 2 s, so this may lag a little)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if get(base + "/stats/requests")["state"] in ("ready", "stopped"):
            return
        time.sleep(0.5)
    raise AssertionError(f"a run is still in progress after {timeout_s} s")
