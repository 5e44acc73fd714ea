"""`make locust` end to end through Locust's own HTTP API, against the real native stack (gateway included):
every target class ticked at once ends with 0 % failures and a validated results run; bad fields, a stopped
run, a second launch on a busy port and a master with one worker behave as the UI promises."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import locust_ui as ui
import pytest

from contract.ports import free_ports
from loadtest.report import validate

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_every_target_ticked_with_four_users_fails_nothing_and_saves_a_result(webui: tuple[str, Path, int]) -> None:
    base, results, _ = webui
    targets: dict[str, str] = ui.get(base + "/twinserve/status")["targets"]
    assert len(targets) == 8 and "TorchServe gRPC via gateway · digits" in targets  # 2 x 2 x 2, digits only
    started = ui.swarm(base, sorted(targets), users=4, rate="8", **ui.SHORT)
    assert started["success"], started
    status = ui.wait_saved(base)
    assert status["error"] is None, status

    stats = ui.get(base + "/stats/requests")
    rows = {s["name"]: s for s in stats["stats"] if s["name"] != "Aggregated"}
    assert set(rows) == set(targets.values()), "every ticked target got its own user and its own requests"
    assert stats["fail_ratio"] == 0.0, stats["errors"]
    assert all(s["num_requests"] > 0 for s in rows.values())

    run_dir = Path(status["run_dir"])
    assert run_dir.parent == results and run_dir.name.endswith("-ui")
    summary = validate(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    assert {p["target"]["id"] for p in summary["points"]} == set(targets.values())
    for p in summary["points"]:
        assert p["load"] == {"mode": "open", "schedule": "constant", "rate_rps": 8.0, "batch": 1, "seed": 1}
        assert p["counts"]["errors"] == p["counts"]["wrong"] == 0
        assert p["counts"]["checked"] == p["counts"]["ok"] > 0, "every answer was checked against the reference"
        assert p["slo"]["slo_ms"] == 100.0 and p["outcome"]["result"] in ("pass", "fail", "generator", "remeasure")
        for rel in p["hlogs"]:
            assert (run_dir / rel).read_text(encoding="utf-8").count("HISTFAAA") >= 3
    assert set(summary["capacity"]) == set(targets.values())
    assert summary["run"]["tfserving_stand_in"] is True and "web UI" in summary["run"]["notes"][0]
    assert (run_dir / "report.html").stat().st_size > 10_000
    with urllib.request.urlopen(base + "/twinserve/report", timeout=10) as resp:
        assert b"<html" in resp.read(200).lower()
    tab = status["rows"]
    assert tab[0]["result"] == str(run_dir) and len(tab) == 1 + len(targets)


def test_bad_fields_and_no_target_get_clear_messages(webui: tuple[str, Path, int]) -> None:
    base, _, _ = webui
    ui.wait_settled(base)
    default = ui.get(base + "/twinserve/status")["default"]
    assert default == "TorchServe REST direct · digits"
    bad = ui.swarm(base, [default], users=1, rate="fast", measured_seconds="0")
    assert not bad["success"]
    assert "Rate: 'fast' is not a number" in bad["message"] and "Measured seconds: 0" in bad["message"]
    assert "not a whole number" in ui.swarm(base, [default], users=1, batch="1.5")["message"]
    closed = ui.swarm(base, [default], users=1, loop="closed", concurrency="0")
    assert "Concurrency: 0 is outside 1..512" in closed["message"]
    none = ui.swarm(base, [], users=1)
    assert not none["success"] and "Tick at least one target" in none["message"]
    time.sleep(2.5)  # Locust caches /stats/requests for 2 s
    after = ui.get(base + "/stats/requests")
    assert after["state"] in ("ready", "stopped") and after["user_count"] == 0, "a refused swarm starts nothing"


def test_stop_saves_what_was_measured_marked_short(webui: tuple[str, Path, int]) -> None:
    base, _, _ = webui
    before = ui.get(base + "/twinserve/status")["run_dir"]
    classes = ["TF Serving (stand-in) gRPC direct · digits", "TorchServe REST via gateway · digits"]
    assert ui.swarm(base, classes, users=1, rate="10", warmup_seconds="1", window_seconds="1", measured_seconds="120")[
        "success"
    ]
    time.sleep(5)
    edit = ui.swarm(base, [], users=9, rate="500")  # Locust's EDIT button sends no classes
    assert not edit["success"] and "cannot be edited while it runs" in edit["message"]
    ui.post(base, "/stop")
    status = ui.wait_saved(base, previous=before, timeout_s=60)
    summary = json.loads((Path(status["run_dir"]) / "summary.json").read_text(encoding="utf-8"))
    assert len(summary["points"]) == 2
    for p in summary["points"]:
        assert not p["valid"] and any(r.startswith("stopped early") for r in p["reasons"])
        assert p["counts"]["ok"] > 0 and p["counts"]["errors"] == 0
        assert p["measured_s"] < 10


def test_a_second_launch_on_the_same_port_names_the_holder(
    webui: tuple[str, Path, int], gateway_stack: Path, tmp_path: Path
) -> None:
    base, _, pid = webui
    port = base.rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "loadtest.webui", "--state", str(gateway_stack), "--web-port", port]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert f"port {port} is busy: held by pid {pid}" in done.stderr and "-m locust -f" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_no_running_stack_says_make_up_first(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "loadtest.webui", "--stack", "native", "--state", str(tmp_path / "state.json")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "run `make up` first" in done.stderr and "Traceback" not in done.stderr


def test_master_with_one_worker_saves_the_run_the_same_way(gateway_stack: Path, tmp_path: Path) -> None:
    web, master = free_ports(2)
    common = ("--models", "digits", "--master-port", str(master))
    head = ui.start(
        gateway_stack, tmp_path / "results", "--master", "--web-port", str(web), *common, log=tmp_path / "m.log"
    )
    worker = None
    base = f"http://127.0.0.1:{web}"
    try:
        ui.wait_up(base, head, tmp_path / "m.log")
        worker = ui.start(gateway_stack, tmp_path / "results", "--worker", *common, log=tmp_path / "w.log")
        for _ in range(120):
            if ui.get(base + "/stats/requests").get("worker_count") == 1:
                break
            time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "w.log").read_text()[-3000:])
        classes = ["TorchServe gRPC direct · digits", "TF Serving (stand-in) REST via gateway · digits"]
        assert ui.swarm(base, classes, users=2, rate="8", **ui.SHORT)["success"]
        status = ui.wait_saved(base)
        assert status["error"] is None, status
        summary = validate(json.loads((Path(status["run_dir"]) / "summary.json").read_text(encoding="utf-8")))
        assert {p["target"]["id"] for p in summary["points"]} == {
            "torchserve-grpc-direct:digits",
            "tfserving-rest-gateway:digits",
        }
        assert all(
            p["counts"]["errors"] == 0 and p["counts"]["checked"] == p["counts"]["ok"] > 0 for p in summary["points"]
        )
        assert any("1 Locust worker" in n for n in summary["run"]["notes"])
        assert ui.get(base + "/stats/requests")["fail_ratio"] == 0.0
    finally:
        if worker is not None:
            ui.stop(worker)
        ui.stop(head)
