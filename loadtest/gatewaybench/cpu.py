"""Gateway CPU cost per request: one gateway worker in front of the no-op upstream, CPU read with psutil.

Starts the no-op upstream (loadtest.gatewaybench.noop) and `python -m gateway` (one worker, REST and gRPC on free
loopback ports, wired like the gateway benchmark's noop group), then measures the gateway process's CPU time
(user + system, all threads) over phases run from this separate process:

    idle   nothing sent for --idle-s seconds (a busy-polling thread shows here)
    rest   --requests v2 JSON infers (POST /v2/models/digits/infer, digits 1x1x8x8) while gRPC ingress is idle
    grpc   --requests ModelInfer calls (raw_input_contents) while REST is idle
    mixed  --requests of each, sent at the same time from two threads
    direct --requests raw float32 posts straight to the no-op upstream (latency reference, no gateway)

Reports CPU ms per request, achieved requests/s and client-side latency (p50/p99) per phase; `gateway adds` is
the REST p50 through the gateway minus the p50 straight to the upstream. With --py-spy DIR, each phase is also
recorded with py-spy (speedscope files, one per phase). Keep the request counts to a few thousand on a shared box.

    python -m loadtest.gatewaybench.cpu --requests 3000 --concurrency 1
    python -m loadtest.gatewaybench.cpu --phases idle,rest --py-spy /tmp/spy --env GRPC_POLL_STRATEGY=poll
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil

from contract import v2
from contract._generated import twinserve_kserve_pb2 as kserve
from contract.ports import Ports, free_ports
from loadtest.gatewaybench import procs
from supervisor.layout import Layout

REPO = Path(__file__).resolve().parents[2]

PHASES = ("idle", "rest", "grpc", "mixed", "direct")


def rest_sender(port: int, path: str, body: bytes, content_type: str) -> Callable[[], None]:
    """A keep-alive HTTP/1.1 POST loop body for one thread; raises on a non-200 answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": content_type}

    def send() -> None:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")

    return send


def grpc_sender(channel: grpc.Channel, x: np.ndarray) -> Callable[[], None]:
    """A blocking ModelInfer call with the input as raw little-endian float32."""
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=kserve.ModelInferRequest.SerializeToString,
        response_deserializer=kserve.ModelInferResponse.FromString,
    )
    request = v2.model_infer_request("digits", {"input": x})

    def send() -> None:
        reply = call(request, timeout=30)
        if not reply.outputs:
            raise RuntimeError("ModelInfer answered without outputs")

    return send


def drive(make_send: Callable[[], Callable[[], None]], requests: int, concurrency: int) -> list[float]:
    """Send `requests` in total from `concurrency` threads (closed loop); the latencies in seconds."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    share = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]

    def worker(n: int) -> None:
        send, mine = make_send(), []
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                send()
                mine.append(time.perf_counter() - t0)
        except BaseException as exc:  # surfaced after join: a failed phase is never reported as a result
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in share]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} sender thread(s) failed: {errors[0]!r}")
    return latencies


def cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process, all threads."""
    times = proc.cpu_times()
    return float(times.user + times.system)


def thread_cpu(proc: psutil.Process) -> dict[str, float]:
    """CPU seconds per thread, keyed `name/tid` (names from /proc, where the OS has them)."""
    out = {}
    for t in proc.threads():
        try:
            name = Path(f"/proc/{proc.pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            name = "thread"
        out[f"{name}/{t.id}"] = t.user_time + t.system_time
    return out


def thread_shares(before: dict[str, float], after: dict[str, float], total: int) -> dict[str, float]:
    """CPU ms per request of each thread that used any over the phase."""
    used = {k: (v - before.get(k, 0.0)) * 1000 / max(total, 1) for k, v in after.items()}
    return {k: round(v, 3) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v >= 0.001}


class Spy:
    """Optional py-spy recording of one phase (SIGINT makes py-spy write its file)."""

    def __init__(self, out: Path | None, pid: int, phase: str, rate: int) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).with_name("py-spy")
        argv = [str(py_spy), "record", "--pid", str(pid), "--rate", str(rate), "--threads"]
        argv += ["--format", "speedscope", "--output", str(out / f"{phase}.speedscope.json"), "--nonblocking"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches before the phase starts

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


def measure(
    name: str,
    gateway: psutil.Process,
    upstream: psutil.Process,
    senders: list[tuple[Callable[[], Callable[[], None]], int]],
    concurrency: int,
    spy: Spy,
) -> dict[str, Any]:
    """Run the senders at once; CPU of the gateway and the upstream over the phase, latency percentiles."""
    results: list[list[float]] = [[] for _ in senders]
    threads0 = thread_cpu(gateway)
    g0, u0, t0 = cpu_s(gateway), cpu_s(upstream), time.perf_counter()

    def run(i: int, make: Callable[[], Callable[[], None]], n: int) -> None:
        results[i] = drive(make, n, concurrency)

    threads = [threading.Thread(target=run, args=(i, make, n)) for i, (make, n) in enumerate(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    g1, u1 = cpu_s(gateway), cpu_s(upstream)
    threads1 = thread_cpu(gateway)
    spy.stop()
    total = sum(n for _, n in senders)
    lat = np.asarray([x for r in results for x in r]) * 1000
    if len(lat) != total:
        raise RuntimeError(f"{name}: {len(lat)} of {total} requests answered")
    return {
        "phase": name,
        "requests": total,
        "wall_s": round(wall, 3),
        "req_per_s": round(total / wall, 1),
        "gateway_cpu_ms_per_req": round((g1 - g0) * 1000 / total, 3),
        "gateway_cores": round((g1 - g0) / wall, 3),
        "upstream_cpu_ms_per_req": round((u1 - u0) * 1000 / total, 3),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "gateway_threads_cpu_ms_per_req": thread_shares(threads0, threads1, total),
    }


def summary(rows: list[dict[str, Any]]) -> str:
    """Per phase over the rounds: the median and the least CPU per request (the least is the one least disturbed
    by other load on a shared machine), median p50, and what the gateway adds to the direct p50."""
    lines = ["phase   rounds  cpu ms/req median (min)  req/s median  p50 ms median  p99 ms median"]
    p50: dict[str, float] = {}
    for phase in dict.fromkeys(r["phase"] for r in rows):
        mine = [r for r in rows if r["phase"] == phase]
        if phase == "idle":
            cores = [r["gateway_cores"] for r in mine]
            lines.append(f"idle    {len(mine):6d}  {statistics.median(cores):.4f} cores (min {min(cores):.4f})")
            continue
        cpu = [r["gateway_cpu_ms_per_req"] for r in mine]
        p50[phase] = statistics.median(r["p50_ms"] for r in mine)
        lines.append(
            f"{phase:7s} {len(mine):6d}  {statistics.median(cpu):11.3f} ({min(cpu):.3f})"
            f"  {statistics.median(r['req_per_s'] for r in mine):12.1f}  {p50[phase]:13.3f}"
            f"  {statistics.median(r['p99_ms'] for r in mine):13.3f}"
        )
    if "rest" in p50 and "direct" in p50:
        lines.append(f"gateway adds (REST p50 minus direct p50): {p50['rest'] - p50['direct']:.3f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start the no-op upstream and one gateway worker, run the phases, print (and optionally write) a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per protocol per phase")
    parser.add_argument("--concurrency", type=int, default=1, help="sender threads per protocol (closed loop)")
    parser.add_argument("--warmup", type=int, default=300, help="requests per protocol sent before measuring")
    parser.add_argument("--repeat", type=int, default=1, help="rounds through the phases (summary: median, min)")
    parser.add_argument("--idle-s", type=float, default=10.0, help="length of the idle phase")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, from: {', '.join(PHASES)}")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the gateway process (repeatable)")
    parser.add_argument("--py-spy", type=Path, help="record each phase with py-spy into this directory")
    parser.add_argument("--spy-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--source", type=Path, default=REPO, help="tree whose `gateway` package runs (e.g. an export of another commit)"
    )
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}")

    x = np.zeros((1, 1, 8, 8), np.float32)
    body, raw_body = v2.infer_json({"input": x}), x.astype("<f4").tobytes()
    (up_port,) = free_ports(1)
    env = procs.noop_gateway_env(f"http://127.0.0.1:{up_port}")
    env.update(kv.split("=", 1) for kv in args.env)
    started: list[subprocess.Popen[bytes]] = []
    channel = None
    tmp = tempfile.TemporaryDirectory(prefix="gateway-cpu-")
    try:
        up = procs.start_noop(up_port)
        started.append(up)
        layout = Layout(Path(tmp.name), REPO / "artifacts", ports=Ports.ephemeral())  # no fixed port touched
        gw, gw_url, grpc_port = procs.start_gateway(layout, env, args.source)
        started.append(gw)
        rest_port = int(gw_url.rsplit(":", 1)[1])
        log = f"{tmp.name}/logs/gateway-bench-{rest_port}.log"
        print(f"gateway pid {gw.pid} (from {args.source}, log {log}), no-op upstream pid {up.pid}", file=sys.stderr)
        gateway, upstream = psutil.Process(gw.pid), psutil.Process(up.pid)
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=30)

        def rest() -> Callable[[], None]:
            return rest_sender(rest_port, "/v2/models/digits/infer", body, "application/json")

        def direct() -> Callable[[], None]:
            return rest_sender(up_port, "/predictions/digits", raw_body, "application/octet-stream")

        def grpc_() -> Callable[[], None]:
            return grpc_sender(channel, x)

        drive(rest, args.warmup, 1)
        drive(grpc_, args.warmup, 1)
        drive(direct, args.warmup, 1)
        rows: list[dict[str, Any]] = []
        n = args.requests
        plan: dict[str, list[tuple[Callable[[], Callable[[], None]], int]]] = {
            "rest": [(rest, n)],
            "grpc": [(grpc_, n)],
            "mixed": [(rest, n), (grpc_, n)],
            "direct": [(direct, n)],
        }
        for round_, phase in [(r, p) for r in range(args.repeat) for p in phases]:
            spy = Spy(args.py_spy, gw.pid, f"{phase}-{round_}", args.spy_rate)
            if phase == "idle":
                threads0, c0, t0 = thread_cpu(gateway), cpu_s(gateway), time.perf_counter()
                time.sleep(args.idle_s)
                used, wall = cpu_s(gateway) - c0, time.perf_counter() - t0
                per_thread = thread_shares(threads0, thread_cpu(gateway), 1)  # ms over the whole phase
                spy.stop()
                rows.append(
                    {
                        "phase": "idle",
                        "wall_s": round(wall, 3),
                        "gateway_cores": round(used / wall, 4),
                        "gateway_threads_cpu_ms": per_thread,
                    }
                )
            else:
                rows.append(measure(phase, gateway, upstream, plan[phase], args.concurrency, spy))
            print(json.dumps(rows[-1]), flush=True)
        print(summary(rows))
        if args.json:
            args.json.write_text(json.dumps({"args": vars(args), "env": env, "results": rows}, indent=1, default=str))
    finally:
        if channel is not None:
            channel.close()
        for proc in reversed(started):
            procs.stop_process(proc)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
