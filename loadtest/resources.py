"""What each stack costs to run, read from outside its processes.

- Memory and CPU of each service's whole process tree (TorchServe's JVM and its Python workers, the TF side, the
  gateway), sampled once a second beside every point: CPU-seconds per request, RSS idle and at its peak.
- Model load time, from what each server exposes: TorchServe's `WorkerLoadTime` gauge (ms, per worker), TF
  Serving's `:tensorflow:cc:saved_model:load_latency` counter (µs, per SavedModel path; the stand-in keeps it too).
- Artifact bytes on disk: the .mar, and the SavedModel version directory the TF side serves.
- The GPU through NVIDIA's management library when one is present; otherwise the record says "no GPU", never 0.

RSS is summed over a tree's processes, so pages they share (libtorch in every TorchServe worker) count once per
process, as `ps` and `top` count them; that is the memory a container limit would have to allow.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from loadtest.search import passes
from loadtest.servermetrics import fetch, metrics_url
from loadtest.stack import StackInfo

SERVICES = ("torchserve", "tfserving", "gateway")
_WORKER_LOAD = re.compile(
    r'^WorkerLoadTime\{WorkerName="W-\d+-(?P<model>.+?)_[^"_]*",[^}]*\}\s+(?P<ms>[\d.eE+-]+)$', re.M
)
_TF_LOAD = re.compile(
    r'^:tensorflow:cc:saved_model:load_latency\{model_path="(?P<path>[^"]+)"[^}]*\}\s+(?P<us>[\d.eE+-]+)$', re.M
)


@dataclass(frozen=True)
class Usage:
    """One reading of a process tree."""

    rss_bytes: int
    cpu_s: float
    """User + system CPU-seconds of the processes alive now (their whole lifetime)."""
    processes: int


def tree_usage(pid: int) -> Usage | None:
    """RSS and CPU time of `pid` and every descendant, or None when `pid` is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    rss, cpu, alive = 0, 0.0, 0
    for p in procs:
        try:
            with p.oneshot():
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
            alive += 1
        except psutil.Error:  # a worker that exited between listing and reading
            continue
    return Usage(rss, cpu, alive)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the container engine's unix socket (Docker's, or podman's Docker-compatible one)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("engine", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def engine_socket() -> str | None:
    """The engine's socket from DOCKER_HOST (as `make engine` sets it), else Docker's default; None if absent."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    path = host.removeprefix("unix://") if host.startswith("unix://") else None
    return path if path and os.path.exists(path) else None


def engine_get(path: str, timeout: float = 10.0) -> Any:
    """GET one Docker Engine API path as JSON (raises OSError when no engine answers)."""
    sock = engine_socket()
    if sock is None:
        raise OSError("no container engine socket (DOCKER_HOST or /var/run/docker.sock)")
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"engine answered {resp.status} to {path}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def _container_id(project: str, service: str) -> str | None:
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    query = urllib.parse.quote(json.dumps({"label": labels}))
    found = engine_get(f"/containers/json?filters={query}")
    return found[0]["Id"] if found else None


def container_usage(container_id: str) -> Usage | None:
    """The engine's cgroup figures of one container: memory in use (without the reclaimable file cache, as
    `docker stats` shows it) and cumulative CPU-seconds."""
    try:
        stats = engine_get(f"/containers/{container_id}/stats?stream=false&one-shot=true")
    except (OSError, ValueError):
        return None
    mem = stats.get("memory_stats") or {}
    cache = (mem.get("stats") or {}).get("inactive_file", (mem.get("stats") or {}).get("cache", 0))
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    if cpu is None or "usage" not in mem:
        return None
    return Usage(int(mem["usage"]) - int(cache), cpu / 1e9, int((stats.get("pids_stats") or {}).get("current", 1)))


def compose_reader(project: str) -> Callable[[], dict[str, Usage]]:
    """A reader of the stack's containers by compose service, for ResourceMeter (ids looked up once)."""
    ids = {name: cid for name in SERVICES if (cid := _container_id(project, name)) is not None}
    return lambda: {name: u for name, cid in ids.items() if (u := container_usage(cid)) is not None}


def image_bytes(project: str) -> dict[str, int]:
    """Size of each running service's image, as the engine reports it."""
    out = {}
    for name in SERVICES:
        cid = _container_id(project, name)
        if cid is not None:
            image = engine_get(f"/containers/{cid}/json")["Image"]
            out[name] = int(engine_get(f"/images/{image}/json")["Size"])
    return out


class ResourceMeter:
    """Samples the services' process trees (natively) or containers (compose); `between` gives one point's CPU
    and peak memory."""

    def __init__(
        self, pids: dict[str, int], watch_gpu: bool = True, reader: Callable[[], dict[str, Usage]] | None = None
    ):
        self.pids = {name: pid for name, pid in pids.items() if name in SERVICES}
        self._reader = reader or (
            lambda: {name: u for name, pid in self.pids.items() if (u := tree_usage(pid)) is not None}
        )
        self.names = list(self.pids) if reader is None else list(SERVICES)
        self.samples: list[tuple[float, dict[str, Usage]]] = []
        self.has_gpu = watch_gpu and gpu()["gpu"] != "no GPU"
        self.gpu_samples: list[tuple[float, list[dict[str, Any]]]] = []

    def sample(self, now: float | None = None) -> dict[str, Usage]:
        """Read every tree (and the GPUs, when there are any) now, in perf_counter time, and keep the reading."""
        at = time.perf_counter() if now is None else now
        reading = self._reader()
        self.samples.append((at, reading))
        if self.has_gpu:
            devices = gpu()["gpu"]
            self.gpu_samples.append((at, devices if isinstance(devices, list) else []))
        return reading

    def between(self, start: float, end: float, requests: int) -> dict[str, Any]:
        """Per service over the measured phase [start, end]: CPU-seconds between the first and last readings inside
        it (so neither warm-up nor drain counts), CPU per request (the point's `requests` scaled to that span, at the
        point's steady rate), and the highest RSS read; plus the GPU ("no GPU" without one)."""
        inside = [(t, r) for t, r in self.samples if start <= t <= end]
        if len(inside) < 2 or end <= start:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        share = requests * (t1 - t0) / (end - start)
        out: dict[str, Any] = {}
        for name in self.names:
            if name not in first or name not in last:
                continue
            cpu = max(0.0, last[name].cpu_s - first[name].cpu_s)
            out[name] = {
                "cpu_s": round(cpu, 4),
                "interval_s": round(t1 - t0, 3),
                "cpu_ms_per_request": round(1000.0 * cpu / share, 4) if share > 0 else None,
                "rss_peak_bytes": max(r[name].rss_bytes for _, r in inside if name in r),
            }
        out["gpu"] = self._gpu_between(t0, t1)
        return out

    def _gpu_between(self, t0: float, t1: float) -> dict[str, Any] | str:
        readings = [d for t, devs in self.gpu_samples if t0 <= t <= t1 for d in devs]
        if not self.has_gpu or not readings:
            return "no GPU"
        return {
            "util_pct_max": max(d["util_pct"] for d in readings),
            "memory_bytes_max": max(d["memory_bytes"] for d in readings),
            "devices": sorted({d["name"] for d in readings}),
        }


def meter_for(stack: StackInfo) -> ResourceMeter | None:
    """Natively the services' process trees; in compose (seen from the host) the engine's container figures;
    None where neither can be read (inside the compose network, or no engine socket)."""
    if stack.pids:
        return ResourceMeter(stack.pids)
    if stack.project is not None:
        try:
            return ResourceMeter({}, reader=compose_reader(stack.project))
        except (OSError, ValueError):
            return None
    return None


def images_of(stack: StackInfo) -> dict[str, int]:
    """Image bytes per service when containers serve, {} natively or when the engine does not answer."""
    if stack.project is None:
        return {}
    try:
        return image_bytes(stack.project)
    except (OSError, ValueError, KeyError):
        return {}


def artifact_bytes(artifacts: Path, models: list[str]) -> dict[str, dict[str, int]]:
    """Bytes on disk per stack and model: the .mar, and the newest SavedModel version directory."""
    out: dict[str, dict[str, int]] = {"torchserve": {}, "tfserving": {}}
    for model in models:
        mar = artifacts / "torchserve" / f"{model}.mar"
        if mar.is_file():
            out["torchserve"][model] = mar.stat().st_size
        versions = sorted(
            (d for d in (artifacts / "tfserving" / model).glob("*") if d.is_dir() and d.name.isdigit()),
            key=lambda d: int(d.name),
        )
        if versions:
            out["tfserving"][model] = sum(f.stat().st_size for f in versions[-1].rglob("*") if f.is_file())
    return out


def torchserve_load_s(metrics_text: str) -> dict[str, float]:
    """Per model, the longest `WorkerLoadTime` of its workers (ms -> s): the time a worker took to load it."""
    out: dict[str, float] = {}
    for m in _WORKER_LOAD.finditer(metrics_text):
        out[m["model"]] = max(out.get(m["model"], 0.0), float(m["ms"]) / 1000.0)
    return out


def tfserving_load_s(metrics_text: str, models: list[str]) -> dict[str, float]:
    """Per model, the SavedModel load latency (µs -> s) of its newest loaded version path."""
    out: dict[str, float] = {}
    newest: dict[str, int] = {}
    for m in _TF_LOAD.finditer(metrics_text):
        parts = Path(m["path"]).parts
        if len(parts) < 2 or not parts[-1].isdigit() or parts[-2] not in models:
            continue
        model, version = parts[-2], int(parts[-1])
        if version >= newest.get(model, -1):
            newest[model] = version
            out[model] = float(m["us"]) / 1e6
    return out


def load_times(stack: StackInfo, models: list[str]) -> dict[str, dict[str, float]]:
    """Model load seconds per stack, from each server's metrics page ({} for a server that does not answer)."""
    out: dict[str, dict[str, float]] = {}
    for fw, port in (("torchserve", "ts_metrics"), ("tfserving", "tf_rest")):
        if fw not in stack.services:
            continue
        try:
            text = fetch(metrics_url(fw, stack.url(fw, port)))
        except OSError:
            continue
        found = torchserve_load_s(text) if fw == "torchserve" else tfserving_load_s(text, models)
        out[fw] = {m: round(v, 3) for m, v in found.items() if m in models}
    return out


def gpu() -> dict[str, Any]:
    """Utilisation and memory of every NVIDIA GPU now, or {"gpu": "no GPU"} (no library, no driver, no device)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # the library raises its own error types, or is not installed at all
        return {"gpu": "no GPU"}
    try:
        devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            util, mem = pynvml.nvmlDeviceGetUtilizationRates(h), pynvml.nvmlDeviceGetMemoryInfo(h)
            devices.append(
                {"index": i, "name": str(pynvml.nvmlDeviceGetName(h)), "util_pct": util.gpu, "memory_bytes": mem.used}
            )
        return {"gpu": devices or "no GPU"}
    finally:
        pynvml.nvmlShutdown()


def _best_passing(points: list[dict[str, Any]], keep: Any) -> dict[str, Any] | None:
    mine = [p for p in points if keep(p["target"]) and passes(p) and p.get("resources")]
    return max(mine, key=lambda p: p["achieved_rps"], default=None)


def summarize(
    points: list[dict[str, Any]],
    idle: list[dict[str, int]],
    model: str,
    *,
    stand_in: bool,
    cold_start: dict[str, dict[str, Any]],
    load_s: dict[str, dict[str, float]],
    artifacts: dict[str, dict[str, int]],
    images: dict[str, int] | None = None,
) -> dict[str, Any]:
    """summary.json's `resources`: per stack and for the gateway, memory idle and at peak, CPU per request at the
    highest passing point (direct for the stacks, through the gateway for the gateway), cold start, model load
    and artifact bytes; `gpu` is "no GPU" when no point saw one."""
    out: dict[str, Any] = {}
    for name in SERVICES:
        peaks = [p["resources"][name]["rss_peak_bytes"] for p in points if name in p.get("resources", {})]
        idles = sorted(r[name] for r in idle if name in r)
        path = "gateway" if name == "gateway" else "direct"
        best = _best_passing(
            points,
            lambda t, name=name, path=path: t["model"] == model
            and t["path"] == path
            and (name == "gateway" or t["framework"] == name),
        )
        per_req = None if best is None else best["resources"].get(name, {}).get("cpu_ms_per_request")
        entry: dict[str, Any] = {
            "rss_idle_bytes": idles[len(idles) // 2] if idles else None,
            "rss_peak_bytes": max(peaks) if peaks else None,
            "cpu_seconds_per_request": None if per_req is None else round(per_req / 1000.0, 7),
            "requests_per_core_s": None if not per_req else round(1000.0 / per_req, 1),
            "at_point": None
            if best is None
            else {"target": best["target"]["id"], "rate_rps": best["load"]["rate_rps"]},
        }
        if name != "gateway":
            entry |= {
                "cold_start_s": cold_start.get(name, {}).get("median_s"),
                "cold_start_runs_s": cold_start.get(name, {}).get("runs_s", []),
                "model_load_s": load_s.get(name, {}),
                "artifact_bytes": artifacts.get(name, {}),
                "stand_in": stand_in and name == "tfserving",
            }
        if images and name in images:
            entry["image_bytes"] = images[name]
        if entry["rss_peak_bytes"] is not None or name != "gateway":
            out[name] = entry
    gpus = [p["resources"]["gpu"] for p in points if isinstance(p.get("resources", {}).get("gpu"), dict)]
    out["gpu"] = (
        {
            "util_pct_max": max(g["util_pct_max"] for g in gpus),
            "memory_bytes_max": max(g["memory_bytes_max"] for g in gpus),
        }
        if gpus
        else "no GPU"
    )
    return out
