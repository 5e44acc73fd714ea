"""Compose's Locust master and worker containers serve the web UI (`python -m loadtest.webui --master/--worker`):
several targets swarmed at once through the master's HTTP API, their users placed on two worker containers,
every answer checked, and each run saved on the host in results/in-compose/ as a validated twinserve result."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.report import validate
from tests.containers.conftest import REPO, ComposeStack
from tests.loadtest import locust_ui as ui

pytestmark = [pytest.mark.containers, pytest.mark.e2e]
UI_PORT = 8089
WORKERS = 2
TARGETS = (
    "torchserve-rest-direct:digits",
    "torchserve-grpc-gateway:digits",
    "tfserving-grpc-direct:digits",
    "tfserving-rest-gateway:digits",
)
"""Both frameworks, both protocols, direct and through the gateway: four users for two workers."""


def workers_of(stats: dict[str, Any]) -> dict[str, int]:
    """Worker id -> users it runs, as the master reports them."""
    return {w["id"]: int(w.get("user_count", 0)) for w in stats.get("workers", [])}


@pytest.fixture(scope="module")
def master(compose_stack: ComposeStack) -> Iterator[str]:
    """The compose master's UI with two worker containers connected (scaled back to one afterwards)."""
    done = compose_stack.compose(
        "up", "-d", "--no-build", "--no-recreate", "--wait", "--scale", f"locust-worker={WORKERS}", "locust-worker"
    )
    assert done.returncode == 0, done.stderr
    base = compose_stack.url(UI_PORT)
    try:
        deadline = time.monotonic() + 120
        while (count := ui.get(base + "/stats/requests").get("worker_count")) != WORKERS:
            assert time.monotonic() < deadline, f"{count} worker(s) connected to the master, not {WORKERS}"
            time.sleep(1)
        yield base
    finally:
        compose_stack.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "locust-worker=1", "locust-worker")


def saved(status: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The run the master saved, read on the host (the master's results folder is bind-mounted)."""
    assert status["error"] is None, status
    rel = Path(status["run_dir"])
    assert rel.parent == Path("results/in-compose") and rel.name.endswith("-ui"), rel
    run_dir = REPO / rel
    return run_dir, validate(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))


def test_the_compose_master_spreads_targets_over_two_worker_containers_and_saves_the_run(
    compose_stack: ComposeStack, master: str
) -> None:
    status = ui.get(master + "/twinserve/status")
    names = {target_id: name for name, target_id in status["targets"].items()}
    assert set(TARGETS) <= set(names), "the compose master offers each service by name on the contract ports"
    assert ("(stand-in)" in names["tfserving-grpc-direct:digits"]) == (compose_stack.tf_side == "standin")
    logs = compose_stack.compose("logs", "--no-log-prefix", "locust-master").stdout
    assert f"{names['tfserving-grpc-direct:digits']} " in logs, "the master's log names the classes as the UI does"
    ui.wait_settled(master)
    started = ui.swarm(master, [names[t] for t in TARGETS], users=len(TARGETS), rate="8", **ui.SHORT)
    assert started["success"], started
    busy: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while True:  # until the run is saved, noting how many users each worker container ran
        for worker, users in workers_of(ui.get(master + "/stats/requests")).items():
            busy[worker] = max(busy.get(worker, 0), users)
        now = ui.get(master + "/twinserve/status")
        if now["run_dir"] != status["run_dir"] or now["error"]:
            break
        assert time.monotonic() < deadline, f"no run saved within 120 s: {now}"
        time.sleep(0.5)
    assert len(busy) == WORKERS and all(n > 0 for n in busy.values()), f"users per worker container: {busy}"
    run_dir, summary = saved(now)

    stats = ui.get(master + "/stats/requests")
    rows = {s["name"]: s for s in stats["stats"] if s["name"] != "Aggregated"}
    assert set(rows) == set(TARGETS) and all(r["num_requests"] > 0 for r in rows.values())
    assert stats["fail_ratio"] == 0.0, stats["errors"]
    assert {p["target"]["id"] for p in summary["points"]} == set(TARGETS)
    for p in summary["points"]:
        assert p["counts"]["errors"] == p["counts"]["wrong"] == 0, p["target"]["id"]
        assert p["counts"]["checked"] == p["counts"]["ok"] > 0, "every answer was checked against the reference"
        for rel in p["hlogs"]:
            assert (run_dir / rel).read_text(encoding="utf-8").count("HISTFAAA") >= 3
    assert summary["run"]["stack"] == "compose"
    assert summary["run"]["tfserving_stand_in"] is (compose_stack.tf_side == "standin")
    assert f"Distributed: {WORKERS} Locust worker(s) drove the targets." in summary["run"]["notes"]
    assert (run_dir / "report.html").stat().st_size > 10_000
    with urllib.request.urlopen(master + "/twinserve/report", timeout=10) as resp:
        assert resp.read() == (run_dir / "report.html").read_bytes(), "the UI links the run saved on the host"
    if os.environ.get("TWINSERVE_SCREENSHOTS") and shutil.which("chromedriver"):
        screenshot(master, now["run_dir"], Path(os.environ["TWINSERVE_SCREENSHOTS"]) / "locust-compose-run.png")


def screenshot(base: str, run_dir: str, out: Path) -> None:
    """The twinserve tab of the compose master after a run, in headless Chromium (for docs/locust-ui.md)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1100,900", "--no-first-run"):
        opts.add_argument(flag)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(base + "/")
        deadline = time.monotonic() + 30
        while not (
            tabs := [t for t in driver.find_elements("css selector", "[role=tab]") if t.text.lower() == "twinserve"]
        ):
            assert time.monotonic() < deadline, "no twinserve tab"
            time.sleep(0.3)
        tabs[0].click()
        while run_dir not in driver.find_element("tag name", "body").text:
            assert time.monotonic() < deadline, "the saved run is not in the tab"
            time.sleep(0.3)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def test_stop_in_compose_saves_what_the_workers_measured(master: str) -> None:
    before = ui.get(master + "/twinserve/status")
    names = {target_id: name for name, target_id in before["targets"].items()}
    ui.wait_settled(master)
    stopped = {"torchserve-grpc-direct:digits", "tfserving-rest-direct:digits"}
    classes = [names[t] for t in sorted(stopped)]
    assert ui.swarm(master, classes, users=2, rate="8", warmup_seconds="1", window_seconds="1", measured_seconds="120")[
        "success"
    ]
    time.sleep(4)
    ui.post(master, "/stop")
    _, summary = saved(ui.wait_saved(master, previous=before["run_dir"], timeout_s=60))
    assert {p["target"]["id"] for p in summary["points"]} == stopped
    for p in summary["points"]:
        assert not p["valid"] and any(r.startswith("stopped early") for r in p["reasons"]), p["reasons"]
        assert p["counts"]["ok"] > 0 and p["counts"]["errors"] == p["counts"]["wrong"] == 0
