"""The web UI's parts without a stack: target names and models from the manifest, the field checks, the
reachability check on Start, and the launcher's busy-port and no-stack messages."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

from contract.ports import Ports
from contract.state import ProcessRecord, ServiceState, StackState
from loadtest.targets import Target
from loadtest.ui import catalog, fields
from loadtest.webui import port_problem

ROOT = Path(__file__).resolve().parents[2]


def _state(tmp_path: Path, artifacts: Path, services: tuple[str, ...] = ("torchserve", "tfserving")) -> Path:
    """A state.json as the supervisor writes it (contract/state.py), with every service ready; nothing runs."""
    state = tmp_path / "run" / "state.json"
    state.parent.mkdir(parents=True)
    proc = ProcessRecord(pid=0, create_time=0.0, argv=[], cwd=str(tmp_path))
    svcs = {
        s: ServiceState(s, s, "standin" if s == "tfserving" else "native", proc, {}, "", "", ready=True)
        for s in services
    }
    doc = StackState(str(state.parent), str(artifacts), "127.0.0.1", Ports(), svcs).to_dict()
    state.write_text(json.dumps(doc), encoding="utf-8")
    return state


def _artifacts(tmp_path: Path, artifacts: Path, extra: str) -> Path:
    """The real manifest and samples plus one model of the user's own (manifest entry + reference samples)."""
    out = tmp_path / "artifacts"
    (out / "samples").mkdir(parents=True)
    manifest = json.loads((artifacts / "manifest.json").read_text(encoding="utf-8"))
    manifest["models"][extra] = dict(manifest["models"]["digits"])
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for model in ("digits", "resnet18"):
        shutil.copy(artifacts / "samples" / f"{model}.npz", out / "samples")
    shutil.copy(artifacts / "samples" / "digits.npz", out / "samples" / f"{extra}.npz")
    return out


def test_labels_read_like_the_target() -> None:
    assert catalog.label(Target("torchserve", "grpc", "gateway", "digits")) == "TorchServe gRPC via gateway · digits"
    assert catalog.label(Target("tfserving", "rest", "direct", "resnet18")) == "TF Serving REST direct · resnet18"
    stand_in = catalog.label(Target("tfserving", "rest", "direct", "digits"), stand_in=True)
    assert stand_in == "TF Serving (stand-in) REST direct · digits"  # named a stand-in wherever it speaks


def test_every_served_model_appears_including_the_users_own(artifacts: Path, tmp_path: Path) -> None:
    arts = _artifacts(tmp_path, artifacts, "mynet")
    cat = catalog.load("native", _state(tmp_path, arts), Path("unused"))
    assert cat.artifacts == arts, "the artifacts the stack serves (state.json), not the default folder"
    models = {t.model for t in cat.targets}
    assert models == {"digits", "resnet18", "mynet"}
    assert len(cat.targets) == 3 * 4, "2 frameworks x 2 protocols, direct only: no gateway in this stack"
    assert catalog.label(cat.default) == "TorchServe REST direct · digits"
    assert len({catalog.label(t) for t in cat.targets}) == len(cat.targets), "one distinct class name per target"
    only = catalog.load("native", _state(tmp_path / "b", arts, ("tfserving",)), Path("x"), ["mynet"])
    assert [t.id for t in only.targets] == [f"tfserving-{p}-direct:mynet" for p in ("rest", "grpc")]


def test_a_model_without_samples_or_not_served_is_named(artifacts: Path, tmp_path: Path) -> None:
    arts = _artifacts(tmp_path, artifacts, "mynet")
    (arts / "samples" / "mynet.npz").unlink()
    state = _state(tmp_path, arts)
    assert "mynet" not in {t.model for t in catalog.load("native", state, Path("x")).targets}
    with pytest.raises(catalog.CatalogError, match="mynet not served here; served: digits, resnet18"):
        catalog.load("native", state, Path("x"), ["mynet"])
    with pytest.raises(catalog.CatalogError, match=r"run `make up` first"):
        catalog.load("native", tmp_path / "nowhere" / "state.json", Path("x"))


def test_field_checks_name_each_problem() -> None:
    assert fields.check({"rate": "50", "measured_seconds": "30", "loop": "open"}) == []
    problems = fields.check(
        {"rate": "0", "measured_seconds": "2", "window_seconds": "3", "batch": "0", "request_timeout": "nan"}
    )
    assert "Rate: 0 req/s is outside (0, 5000] per target" in problems
    assert "Measured seconds: 2 is shorter than one window (3 s)" in problems
    assert "Batch: 0 is outside 1..256" in problems
    assert "Request timeout: 'nan' is not a finite number" in problems
    assert fields.check({"loop": "sideways"}) == ["Loop: 'sideways' is neither 'open' nor 'closed'"]
    assert fields.check({"loop": "closed", "rate": "0", "concurrency": "4"}) == [], "Rate does not apply closed"


def test_start_names_an_unreachable_target(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed when the block ends: nothing listens there
    t = Target("tfserving", "grpc", "direct", "digits", port_override=dead)
    name = catalog.label(t)
    cls = type(name, (), {"target": t})
    form = MultiDict([("user_classes", name), ("rate", "10")])
    problems, ticked = fields.check_start(form, {name: cls})
    assert ticked == [name]
    assert problems == [f"Cannot reach {name} at 127.0.0.1:{dead}: nothing listens there (is the stack up? `make up`)"]


def test_a_busy_port_names_the_process_holding_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        problem = port_problem("127.0.0.1", port)
    assert problem is not None and f"port {port} is busy: held by pid " in problem
    assert "pytest" in problem or "python" in problem
    assert port_problem("127.0.0.1", port) is None, "free again once closed"


def test_the_launcher_without_a_stack_says_make_up(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "loadtest.webui", "--stack", "native", "--state", str(tmp_path / "state.json")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"no running stack ({tmp_path / 'state.json'} does not exist): run `make up` first" in done.stderr


def test_the_launcher_names_a_results_folder_it_cannot_write(artifacts: Path, tmp_path: Path) -> None:
    """Checked before the UI starts (compose's master bind-mounts results/in-compose), not after a run."""
    state = _state(tmp_path, artifacts)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    base = [sys.executable, "-m", "loadtest.webui", "--state", str(state), "--web-port", port, "--print"]
    bad = subprocess.run(
        [*base, "--results", str(blocker / "runs")], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert f"cannot save UI runs in {blocker / 'runs'}: " in bad.stderr and "--results" in bad.stderr
    good = subprocess.run(
        [*base, "--results", str(tmp_path / "runs")], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert good.returncode == 0 and f"--twinserve-results {tmp_path / 'runs'}" in good.stdout, good.stderr
