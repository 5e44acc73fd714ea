"""The cost side, checked against outside reads of the same processes and files: /proc for memory and CPU,
stat for artifact sizes, the servers' own metrics for model load; and cold start rises when a model is made
slower to load. Real servers throughout (the session's native stack); nothing here asserts a speed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from loadtest import coldstart, resources
from loadtest.report.schema import Resources, ServiceUsage
from loadtest.stack import from_state
from tests.conftest import NativeStack

pytestmark = [pytest.mark.e2e]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _proc_tree(root: int) -> list[int]:
    """Descendants of `root` from /proc's parent links, without psutil."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        tree += frontier
    return tree


def _proc_usage(pids: list[int]) -> tuple[int, float]:
    rss = cpu = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return int(rss), cpu


@pytest.mark.parametrize("service", ["torchserve", "tfserving"])
def test_tree_usage_agrees_with_proc(native_stack: NativeStack, service: str) -> None:
    pid = from_state(native_stack.run_dir / "state.json").pids[service]
    ours = resources.tree_usage(pid)
    tree = _proc_tree(pid)
    rss, cpu = _proc_usage(tree)
    assert ours is not None and ours.processes == len(tree)
    if service == "torchserve":
        assert ours.processes >= 3  # the launcher, the JVM and at least one Python worker
    assert abs(ours.rss_bytes - rss) <= 0.05 * rss  # the two reads are a few ms apart
    assert abs(ours.cpu_s - cpu) <= 0.5


def test_cpu_per_request_is_the_trees_cpu_over_the_requests(native_stack: NativeStack, artifacts: Path) -> None:
    info = from_state(native_stack.run_dir / "state.json")
    meter = resources.ResourceMeter({"tfserving": info.pids["tfserving"]}, watch_gpu=False)
    body = (artifacts / "samples" / "digits.json").read_bytes()
    url = info.url("tfserving", "tf_rest", "/v1/models/digits:predict")
    start = time.perf_counter()
    meter.sample()
    for _ in range(200):
        with urllib.request.urlopen(urllib.request.Request(url, body, method="POST"), timeout=10) as resp:
            assert resp.status == 200
    meter.sample()
    end = time.perf_counter()
    out = meter.between(start, end, 200)
    usage = ServiceUsage.model_validate(out["tfserving"])
    assert out["gpu"] in ("no GPU",) or isinstance(out["gpu"], dict)
    assert usage.cpu_s > 0 and usage.cpu_ms_per_request == pytest.approx(1000 * usage.cpu_s / 200, rel=0.01)
    assert usage.rss_peak_bytes == max(r["tfserving"].rss_bytes for _, r in meter.samples)


def test_artifact_bytes_are_the_files_on_disk(artifacts: Path) -> None:
    sizes = resources.artifact_bytes(artifacts, ["digits", "resnet18"])
    for model in ("digits", "resnet18"):
        assert sizes["torchserve"][model] == (artifacts / "torchserve" / f"{model}.mar").stat().st_size
        newest = max(
            (d for d in (artifacts / "tfserving" / model).iterdir() if d.name.isdigit()), key=lambda d: int(d.name)
        )
        du = subprocess.run(["du", "-sb", "--apparent-size", str(newest)], capture_output=True, text=True, check=True)
        dirs = sum(d.stat().st_size for d in [newest, *newest.rglob("*")] if d.is_dir())
        assert sizes["tfserving"][model] == int(du.stdout.split()[0]) - dirs  # du counts the directories too


def test_model_load_times_come_from_each_servers_metrics(native_stack: NativeStack) -> None:
    info = from_state(native_stack.run_dir / "state.json")
    loads = resources.load_times(info, ["digits", "resnet18"])
    for fw in ("torchserve", "tfserving"):
        assert set(loads[fw]) == {"digits", "resnet18"} and all(0 < s < 240 for s in loads[fw].values()), loads


def test_no_gpu_is_said_not_zeroed() -> None:
    if Path("/dev/nvidia0").exists():
        pytest.skip("a GPU is present: the no-GPU record cannot be checked here")
    assert resources.gpu() == {"gpu": "no GPU"}
    Resources.model_validate({"gpu": "no GPU"})


@pytest.mark.slow
def test_cold_start_rises_when_a_model_is_made_slower_to_load(artifacts: Path, tmp_path: Path) -> None:
    """The TF side replays assets.extra/tf_serving_warmup_requests before it serves a version, as TF Serving does:
    the same SavedModel with its warm-up records repeated 4,000 times must take longer to first answer."""
    import tensorflow as tf

    slow = tmp_path / "artifacts"
    shutil.copytree(artifacts, slow, symlinks=True, ignore=shutil.ignore_patterns("resnet18*"))
    for name in ("resnet18",):  # unchanged models are shared, not copied
        os.symlink(artifacts / "tfserving" / name, slow / "tfserving" / name)
        os.symlink(artifacts / "torchserve" / f"{name}.mar", slow / "torchserve" / f"{name}.mar")
    warmup = next((slow / "tfserving" / "digits").glob("*/assets.extra/tf_serving_warmup_requests"))
    records = list(tf.data.TFRecordDataset(str(warmup)).as_numpy_iterator())
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        for _ in range(4000):
            for r in records:
                writer.write(r)
    plain = coldstart.measure_once("tfserving", "digits", artifacts)
    slower = coldstart.measure_once("tfserving", "digits", slow)
    assert slower > plain + 2.0, (plain, slower)  # 4,000x the warm-up: seconds more, beyond run-to-run noise
