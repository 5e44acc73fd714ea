"""End to end on the real TF Serving stand-in: Locust with two worker processes drives an open-loop point,
every answer is checked against the reference, and the master merges both shards' histograms."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.point import build_point
from loadtest.recorder import Recorder
from loadtest.validity import Criteria

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The TF Serving stand-in on free loopback ports, once for this module."""
    if not (ARTIFACTS / "manifest.json").exists():
        pytest.skip("artifacts/manifest.json missing: run `make export` first")
    stack_mod = pytest.importorskip("supervisor.stack")
    from contract.ports import Ports

    ports = Ports.ephemeral()
    stack = stack_mod.Stack(tmp_path_factory.mktemp("run"), ARTIFACTS, ports)
    try:
        stack.up(["tfserving"], timeout=120)
        yield {"grpc": ports.tf_grpc, "rest": ports.tf_rest}
    finally:
        stack.down()


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_locust_point_checks_answers_and_merges_two_processes(
    standin: dict[str, int], protocol: str, tmp_path: Path
) -> None:
    port = standin[protocol]
    out = tmp_path / "point.json"
    user = "GrpcUser" if protocol == "grpc" else "RestUser"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtest" / "locustfile.py"),
        user,
        "--headless",
        "--only-summary",
        "--skip-log-setup",
        "-u",
        "2",
        "-r",
        "2",
        "--processes",
        "2",
        "-t",
        "40s",
        "-H",
        f"http://127.0.0.1:{port}",
        "--lt-target",
        f"tfserving-{protocol}-direct:digits@{port}",
        "--lt-rate",
        "30",
        "--lt-schedule",
        "constant",
        "--lt-warmup",
        "1",
        "--lt-duration",
        "3",
        "--lt-window",
        "1",
        "--lt-artifacts",
        str(ARTIFACTS),
        "--lt-out",
        str(out),
    ]
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["shards_expected"] == doc["shards_received"] == 2
    counts = doc["snapshot"]["totals"]["counts"]
    assert counts["wrong"] == 0 and counts["errors"] == 0
    assert counts["checked"] == counts["ok"] >= 80  # 30/s for 3 s measured, minus what is still in flight
    assert counts["warmup"] >= 25  # the first second was sent but excluded
    rec = Recorder.merge([doc["snapshot"]])
    assert rec.totals.from_schedule.get_total_count() == counts["ok"]
    point = build_point(
        rec,
        target={"id": rec.target},
        load={"mode": "open", "rate_rps": 30.0},
        measured_s=3.0,
        generator={"cpu_pct": 0.0},
        criteria=Criteria(warmup_s=1, window_s=1, min_duration_s=3, min_requests=50, stable_windows=3),
    )
    assert not any("wrong" in r or "unchecked" in r or "errors" in r for r in point["reasons"])
