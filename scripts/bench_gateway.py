"""Gateway overhead benchmark, open loop: TorchServe direct vs through the gateway vs the gateway in front of a
no-op upstream, REST and gRPC; and the upstream-client comparison (aiohttp vs httpx) on the same schedule.

Each group first measures its backend's capacity (closed loop, `--probe-s`), then sends at `--fraction` of it
(default half) on a Poisson schedule; latency counts from the scheduled send (no coordinated omission), recorded
in full-resolution HdrHistograms by loadtest.recorder; warm-up is excluded; every real answer is checked.

    make up                                    # TorchServe, the TF side and the gateway natively (run/)
    python scripts/bench_gateway.py --run-dir run --out results/gateway-bench --duration 60 --warmup 10
    python scripts/bench_gateway.py --groups noop,clients --out /tmp/gb --duration 1 --warmup 0.3 --rate 50  # smoke

Writes <out>/bench.json and <out>/bench.md. Run it on a quiet machine: numbers from a busy one are not results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from contract import tskeys, v2  # noqa: E402
from contract._generated import twinserve_kserve_pb2 as kserve  # noqa: E402
from contract._generated import twinserve_torchserve_pb2 as ts_pb2  # noqa: E402
from contract.state import load as read_state  # noqa: E402
from loadtest.recorder import Recorder  # noqa: E402
from loadtest.schedule import Schedule  # noqa: E402

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MAX_IN_FLIGHT = 512
Send = Callable[[], Awaitable[np.ndarray | None]]  # returns logits (checked) or None (unchecked)


@dataclass
class Target:
    """One thing to measure: how to send one request and the reference answer (None: not checked)."""

    name: str
    group: str
    send: Send
    want: np.ndarray | None = None


def sample() -> tuple[np.ndarray, np.ndarray | None]:
    """One digits input row and its reference logits (zeros and None without artifacts)."""
    path = REPO / "artifacts" / "samples" / "digits.npz"
    if not path.is_file():
        return np.zeros((1, 1, 8, 8), np.float32), None
    data = np.load(path)
    return data["inputs"][:1].astype(np.float32), data["logits"][:1]


def v2_body(x: np.ndarray) -> bytes:
    return v2.infer_json({"input": x})


def rest_gateway(session: aiohttp.ClientSession, url: str, x: np.ndarray, backend: str) -> Send:
    body, headers = v2_body(x), {"Content-Type": "application/json", "X-Backend": backend}

    async def send() -> np.ndarray | None:
        async with session.post(f"{url}/v2/models/digits/infer", data=body, headers=headers) as r:
            answer = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
        out = next(o for o in answer["outputs"] if o["name"] == "logits")
        return np.asarray(out["data"], np.float32).reshape(out["shape"])

    return send


def model_infer_request(x: np.ndarray) -> kserve.ModelInferRequest:
    """A v2 gRPC ModelInfer request for digits with `x` as raw little-endian float32."""
    return v2.model_infer_request("digits", {"input": x.astype(np.float32)})


def grpc_gateway(channel: grpc.aio.Channel, x: np.ndarray, backend: str) -> Send:
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=kserve.ModelInferRequest.SerializeToString,
        response_deserializer=kserve.ModelInferResponse.FromString,
    )
    request = model_infer_request(x)
    metadata = (("backend", backend),)

    async def send() -> np.ndarray | None:
        reply = await call(request, metadata=metadata, timeout=30)
        i = [o.name for o in reply.outputs].index("logits")
        return np.frombuffer(reply.raw_output_contents[i], "<f4").reshape(list(reply.outputs[i].shape))

    return send


def key_reader(key_file: Path | None) -> Callable[[], str | None]:
    """TorchServe's inference key, re-read on every call (it may be refreshed; the file is tiny)."""
    keys = tskeys.KeyFile(key_file) if key_file else None
    return lambda: keys.key() if keys else None


def rest_torchserve(session: Any, url: str, x: np.ndarray, key: Callable[[], str | None]) -> Send:
    """Direct TorchServe REST (raw float32); `session` is an aiohttp.ClientSession or an httpx.AsyncClient."""
    payload = x.astype("<f4").tobytes()

    async def send() -> np.ndarray | None:
        headers = {"Content-Type": "application/octet-stream"}
        token = key()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(session, aiohttp.ClientSession):
            async with session.post(f"{url}/predictions/digits", data=payload, headers=headers) as r:
                status, raw = r.status, await r.read()
        else:
            r = await session.post(f"{url}/predictions/digits", content=payload, headers=headers)
            status, raw = r.status_code, r.content
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return np.asarray(json.loads(raw)["outputs"]["logits"], np.float32)

    return send


def grpc_torchserve(channel: grpc.aio.Channel, x: np.ndarray, key: Callable[[], str | None]) -> Send:
    call = channel.unary_unary(
        "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
        request_serializer=ts_pb2.PredictionsRequest.SerializeToString,
        response_deserializer=ts_pb2.PredictionResponse.FromString,
    )
    request = ts_pb2.PredictionsRequest(model_name="digits", input={"input": x.astype("<f4").tobytes()})

    async def send() -> np.ndarray | None:
        token = key()
        reply = await call(request, metadata=(("authorization", f"Bearer {token}"),) if token else (), timeout=30)
        return np.asarray(json.loads(reply.prediction)["outputs"]["logits"], np.float32)

    return send


async def capacity(send: Send, seconds: float, concurrency: int = 8) -> float:
    """Closed-loop throughput (requests/s) with `concurrency` callers for `seconds`."""
    done, stop = 0, time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await send()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


SPIN_S = 0.0015
"""How long before each send the pacer stops sleeping and yields in a loop instead."""


async def open_loop(target: Target, rate: float, duration: float, warmup: float, seed: int) -> Recorder:
    """Send on a Poisson schedule at `rate` for `warmup + duration` seconds; record from the scheduled time."""
    recorder = Recorder(target.name, warmup_s=warmup, window_s=max(1.0, duration / 5))
    start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        sent = time.perf_counter()
        try:
            got = await target.send()
            done = time.perf_counter()
            if got is None or target.want is None:
                outcome = "unchecked"
            else:
                outcome = "ok" if np.allclose(got, target.want, atol=1e-3) else "wrong"
        except Exception:  # a failed request is recorded as an error, never dropped silently
            done, outcome = time.perf_counter(), "errors"
        recorder.record(scheduled, sent, done, outcome)

    for offset in Schedule(rate, "poisson", seed).offsets(duration_s=warmup + duration):
        due = start + offset
        delay = due - time.perf_counter() - SPIN_S
        if delay > 0:
            await asyncio.sleep(delay)
        while time.perf_counter() < due:  # the loop's timers round up to ~1 ms: spin the last stretch
            await asyncio.sleep(0)
        if len(tasks) >= MAX_IN_FLIGHT:
            recorder.count("dropped")
            continue
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return recorder


def summary(recorder: Recorder, rate: float) -> dict[str, Any]:
    """Counts and exact percentiles (ms) from the full-resolution histogram, from the scheduled send."""
    totals = recorder.totals
    hist = totals.from_schedule
    return {
        "target": recorder.target,
        "rate_rps": round(rate, 1),
        "counts": dict(totals.counts),
        "latency_ms": {
            f"p{p:g}": hist.get_value_at_percentile(p) / 1000 if hist.get_total_count() else None for p in PERCENTILES
        },
        "histogram": recorder.snapshot()["totals"],
    }


def start_process(argv: list[str], env: dict[str, str], ready_url: str, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start a helper process in its own group and wait until `ready_url` answers 200."""
    import urllib.request

    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"{ready_url} not ready after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the helper's group, SIGKILL it after 20 s."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    x, want = sample()
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    results: list[dict[str, Any]] = []
    helpers: list[subprocess.Popen[bytes]] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT))
    channels: list[grpc.aio.Channel] = []
    try:
        plan: list[tuple[str, Send, list[Target]]] = []  # (group, backend probe, targets)
        if "stacks" in groups:
            current = read_state(Path(args.run_dir) / "state.json")
            if current is None or "gateway" not in current.services:
                raise SystemExit(f"no gateway recorded in {args.run_dir}/state.json: run `make up` first")
            p = current.ports
            key = key_reader(tskeys.key_file_in(Path(args.run_dir)))
            ts_channel = grpc.aio.insecure_channel(f"127.0.0.1:{p.ts_grpc_inference}")
            gw_channel = grpc.aio.insecure_channel(f"127.0.0.1:{p.gateway_grpc}")
            channels += [ts_channel, gw_channel]
            ts_url, gw_url = f"http://127.0.0.1:{p.ts_inference}", f"http://127.0.0.1:{p.gateway_rest}"
            direct = rest_torchserve(session, ts_url, x, key)
            plan.append(
                (
                    "stacks",
                    direct,
                    [
                        Target("torchserve-rest-direct", "stacks", direct, want),
                        Target("torchserve-grpc-direct", "stacks", grpc_torchserve(ts_channel, x, key), want),
                        Target(
                            "gateway-rest->torchserve", "stacks", rest_gateway(session, gw_url, x, "torchserve"), want
                        ),
                        Target("gateway-grpc->torchserve", "stacks", grpc_gateway(gw_channel, x, "torchserve"), want),
                    ],
                )
            )
        if "noop" in groups or "clients" in groups:
            upstream_port = free_port()
            upstream = f"http://127.0.0.1:{upstream_port}"
            helpers.append(
                start_process(
                    [sys.executable, "scripts/bench_noop_upstream.py", "--port", str(upstream_port)],
                    {},
                    upstream + "/ping",
                )
            )
            noop_direct = rest_torchserve(session, upstream, x, key_reader(None))
            if "noop" in groups:
                rest_port, grpc_port = free_port(), free_port()
                env = {
                    "TWINSERVE_SERVER__HOST": "127.0.0.1",
                    "TWINSERVE_SERVER__PORT": str(rest_port),
                    "TWINSERVE_SERVER__GRPC_PORT": str(grpc_port),
                    "TWINSERVE_BACKENDS__TORCHSERVE__PROTOCOL": "rest",
                    "TWINSERVE_BACKENDS__TORCHSERVE__REST_URL": upstream,
                    "TWINSERVE_BACKENDS__TFSERVING__ENABLED": "false",
                    "TWINSERVE_ROUTES__MODELS__RESNET18__BACKEND": "torchserve",
                    "TWINSERVE_LIMITS__HEALTH_INTERVAL_S": "3600",
                    "TWINSERVE_TELEMETRY__LOG_LEVEL": "WARNING",
                }
                gw = f"http://127.0.0.1:{rest_port}"
                helpers.append(start_process([sys.executable, "-m", "gateway"], env, gw + "/v2/health/ready"))
                noop_channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
                channels.append(noop_channel)
                plan.append(
                    (
                        "noop",
                        noop_direct,
                        [
                            Target("noop-rest-direct", "noop", noop_direct),
                            Target("gateway-rest->noop", "noop", rest_gateway(session, gw, x, "torchserve")),
                            Target("gateway-grpc->noop", "noop", grpc_gateway(noop_channel, x, "torchserve")),
                        ],
                    )
                )
            if "clients" in groups:
                import httpx

                limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
                client = httpx.AsyncClient(limits=limits, timeout=30)
                plan.append(
                    (
                        "clients",
                        noop_direct,
                        [
                            Target("aiohttp->noop", "clients", noop_direct),
                            Target("httpx->noop", "clients", rest_torchserve(client, upstream, x, key_reader(None))),
                        ],
                    )
                )
        for group, probe, targets in plan:
            for target in targets:  # each path answers at all before anything is timed
                got = await target.send()
                if target.want is not None and (got is None or not np.allclose(got, target.want, atol=1e-3)):
                    raise SystemExit(f"{target.name}: wrong answer before the run")
            cap = args.rate or await capacity(probe, args.probe_s)
            rate = args.rate or cap * args.fraction
            print(f"{group}: capacity {cap:.0f} req/s, sending at {rate:.0f} req/s", flush=True)
            for i, target in enumerate(targets):
                recorder = await open_loop(target, rate, args.duration, args.warmup, seed=i)
                results.append({"group": group, "capacity_rps": round(cap, 1), **summary(recorder, rate)})
                print(f"  {target.name}: {results[-1]['latency_ms']}", flush=True)
    finally:
        await session.close()
        for channel in channels:
            await channel.close()
        for proc in helpers:
            stop_process(proc)
    return {"args": vars(args), "results": results}


def markdown(report: dict[str, Any]) -> str:
    """One table row per target (percentiles exact, from the full histogram; latency from the scheduled send)."""
    head = "| group | target | rate req/s | sent | ok | wrong | errors | late | p50 ms | p90 ms | p99 ms | p99.9 ms |"
    lines = [head, "|" + "---|" * 12]
    for r in report["results"]:
        c, lat = r["counts"], r["latency_ms"]
        cells = [r["group"], r["target"], r["rate_rps"], c["sent"], c["ok"], c["wrong"], c["errors"], c["late"]]
        cells += [f"{lat[k]:.3f}" if lat[k] is not None else "-" for k in ("p50", "p90", "p99", "p99.9")]
        lines.append("| " + " | ".join(str(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parse, run, write <out>/bench.json and <out>/bench.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="directory for bench.json and bench.md")
    parser.add_argument("--groups", default="stacks,noop,clients", help="from: stacks, noop, clients")
    parser.add_argument("--run-dir", default="run", help="native stack started by `make up` (for the stacks group)")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per target")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds sent first and left out")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the measured capacity to send")
    parser.add_argument("--rate", type=float, default=0.0, help="fixed rate in req/s (skips the capacity probe)")
    parser.add_argument("--probe-s", type=float, default=10.0, help="closed-loop capacity probe length")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "bench.md").write_text(markdown(report))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
