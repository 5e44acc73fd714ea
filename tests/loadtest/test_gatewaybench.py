"""The gateway benchmark end to end: real Envoy and a real gateway in front of real TorchServe and the TF Serving
stand-in (native_stack); it must report Envoy's anchor row, the gateway's rows over the same baseline, judged
points, and the ceilings; and its slice interleaving (`--slices`) against the real no-op upstream, an error
injected into one slice where a fault is needed. Nothing here asserts a speed."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from contract.state import load as read_state
from loadtest import adrive, affinity
from loadtest.drive import Outcome
from loadtest.gatewaybench import envoy, measure, noop, procs, senders
from loadtest.gatewaybench.__main__ import main
from loadtest.schedule import Schedule
from loadtest.validity import Criteria
from supervisor.processes import owned_group
from tests.conftest import NativeStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bootstrap_is_a_plain_proxy() -> None:
    config = envoy.bootstrap({"up": (10001, 8501)}, admin_port=10002)
    (listener,) = config["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"] == {"cluster": "up", "timeout": "0s"}  # no retry policy, no timeout cutting requests
    assert manager["codec_type"] == "HTTP1"
    (cluster,) = config["static_resources"]["clusters"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "127.0.0.1", "port_value": 8501}


def test_bench_reports_the_envoy_anchor_beside_the_gateway(native_stack: NativeStack, tmp_path: Path) -> None:
    out = tmp_path / "gb"
    argv = ["--run-dir", str(native_stack.run_dir), "--out", str(out), "--groups", "anchor,ceiling"]
    argv += ["--criteria", "quick", "--duration", "2", "--warmup", "0.5", "--rounds", "1", "--anchor-rate", "40"]
    argv += ["--ceiling-s", "1", "--ceiling-concurrency", "4", "--slices", "2", "--slice-warmup", "0.2"]
    state = read_state(native_stack.run_dir / "state.json")
    assert state is not None
    stack = [p.pid for s in state.services.values() for p in owned_group(s.process)]
    everywhere, nice = set(affinity.allowed()), os.getpriority(os.PRIO_PROCESS, 0)
    assert all(os.sched_getaffinity(t) == everywhere for pid in stack for t in affinity.threads(pid))
    assert main(argv) == 0
    report = json.loads((out / "bench.json").read_text())

    # --cpus dedicated (the default): the proxies on one CPU, all else on the other, held to the end, then undone.
    cpus = report["cpus"]
    if len(everywhere) >= 2:
        assert cpus["layout"] == "dedicated" and cpus["strays"] == [] and cpus["threads_moved"] > 0
        assert cpus["proxies"] == ["envoy", "gateway", "gateway->noop"]
        assert {"generator", "noop", "stack torchserve", "stack tfserving"} <= set(cpus["others"])
        assert cpus["generator"] in ("nice -5", "normal")
    after = [os.sched_getaffinity(t) for pid in stack for t in affinity.threads(pid)]
    assert after and all(a == everywhere for a in after), "the stack's processes get every CPU back"
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice, "and the generator (this process) its priority"
    assert report["slicing"] == {"slices": 2, "slice_warmup_s": 0.2}
    assert all(p["slices"]["count"] == 2 for p in report["points"])

    names = {p["target"]["name"] for p in report["points"]}
    assert names == {
        "tf-rest-direct",
        "envoy->tf-rest",
        "gateway-v1->tf-rest",
        "gateway-v2->tf-rest",
        "ts-grpc-direct",
        "gateway-v2->ts-grpc",
    }
    for p in report["points"]:
        assert p["counts"]["ok"] > 0 and p["counts"]["wrong"] == 0 and p["counts"]["errors"] == 0, p["target"]
        assert p["counts"]["checked"] == p["counts"]["ok"], "every answer is compared with the reference"
        assert isinstance(p["valid"], bool) and "outcome" in p, "judged by loadtest.validity"
        if not p["valid"]:
            assert p["reasons"]

    hops = report["added_ms"]
    assert hops["envoy->tf-rest"]["baseline"] == "tf-rest-direct"
    assert hops["gateway-v1->tf-rest"]["baseline"] == "tf-rest-direct"
    assert hops["gateway-v2->ts-grpc"]["baseline"] == "ts-grpc-direct"
    for row in hops.values():
        assert all(isinstance(row[k], float) for k in ("p50", "p99", "p99.9")), row
        assert set(row["pooled"]) == {"p50", "p99", "p99.9"}, "every point carries its histogram for the pooled read"
    assert set(report["against_envoy"]) == {"gateway-v1->tf-rest", "gateway-v2->tf-rest"}
    assert report["versions"]["envoy"].startswith("1.40")

    ceilings = {c["target"]: c for c in report["ceilings"]}
    assert set(ceilings) == {"noop-direct", "envoy->noop", "gateway-v2->noop"}
    assert all(c["requests"] > 0 and c["rps_per_core"] for c in ceilings.values())

    md = (out / "bench.md").read_text()
    assert "| envoy->tf-rest | tf-rest-direct |" in md
    assert md.startswith(f"CPUs: {cpus['layout']}")


# Slice interleaving (`--slices`), driven against the real no-op upstream on loopback. Short criteria: 3 windows
# of 0.4 s, so 1.2 s measured per point; at 40 req/s that is ~48 requests per point.
RATE = 40.0
SHORT = Criteria(warmup_s=0.3, window_s=0.4, min_duration_s=1.2, min_requests=10, stable_windows=2, drift_windows=3)
SLICE_WARMUP = 0.1
NOOP_WANT = np.asarray([noop.LOGITS], np.float32)


@pytest.fixture(scope="module")
def noop_url() -> Iterator[str]:
    port = procs.free_port()
    proc = procs.start_noop(port)
    yield f"http://127.0.0.1:{port}"
    procs.stop_process(proc)


Faulty = Callable[[str, int], bool]


async def _drive(
    url: str, names: list[str], slices: int, n_rounds: int = 1, fails: Faulty | None = None
) -> tuple[list[dict[str, Any]], list[tuple[str, float]], list[tuple[str, float]]]:
    """Every name a target sending to the no-op upstream; returns the points, each send (name, perf time) and the
    progress lines with their times. `fails(name, call)` injects an error instead of that call's request."""
    sends: list[tuple[str, float]] = []
    lines: list[tuple[str, float]] = []
    async with aiohttp.ClientSession() as session:
        real = senders.ts_rest(session, url, np.zeros((1, 1, 8, 8), np.float32), lambda: None, NOOP_WANT)

        def make(name: str) -> adrive.ASend:
            calls = 0

            async def send() -> Outcome:
                nonlocal calls
                sends.append((name, time.perf_counter()))
                calls += 1
                if fails is not None and fails(name, calls - 1):
                    return "errors"
                return await real()

            return send

        targets = [measure.Target(n, "g", make(n)) for n in names]
        for t in targets[1:]:
            t.baseline = names[0]
        progress = lambda line: lines.append((line, time.perf_counter()))  # noqa: E731
        group = measure.Group("g", targets, rate=RATE)
        points = await measure.rounds([group], SHORT, n_rounds, 0.5, 1.0, progress, None, slices, SLICE_WARMUP)
    return points, sends, lines


def _runs(sends: list[tuple[str, float]], after: float = 0.0) -> list[str]:
    """The targets in the order their stretches of consecutive sends came (a slice, with its warm burst, is one)."""
    return [name for name, _ in itertools.groupby(n for n, t in sends if t >= after)]


def _expected(seeds: list[int], warmups: list[float], each: float) -> tuple[int, int, list[int]]:
    """(measured, warm-up, due per window) that these Poisson slices laid end to end must give."""
    measured, warm, due = 0, 0, [0] * round(SHORT.measured_s(RATE) / SHORT.window_s)
    for j, (seed, w) in enumerate(zip(seeds, warmups, strict=True)):
        for o in Schedule(RATE, "poisson", seed).offsets(duration_s=w + each):
            if o < w:
                warm += 1
                continue
            measured += 1
            due[int((j * each + o - w) // SHORT.window_s)] += 1
    return measured, warm, due


def test_sliced_points_hold_every_slice_in_one_histogram(noop_url: str) -> None:
    slices = 3
    points, _, _ = asyncio.run(_drive(noop_url, ["a", "b", "c"], slices))
    assert [p["target"]["name"] for p in points] != [] and len(points) == 3
    measured = SHORT.measured_s(RATE)
    for i, name in enumerate(["a", "b", "c"]):  # round 0: the order as given
        (p,) = [p for p in points if p["target"]["name"] == name]
        seeds = [measure.slice_seed(0, i, j) for j in range(slices)]
        assert p["slices"]["seeds"] == seeds and len(set(seeds)) == slices
        assert p["slices"]["measured_s_each"] == pytest.approx(measured / slices)
        want, warm, due = _expected(seeds, [SHORT.warmup_s] + [SLICE_WARMUP] * (slices - 1), measured / slices)
        assert 0.5 * RATE * measured < want < 1.5 * RATE * measured
        assert p["counts"]["sent"] == p["counts"]["ok"] == want, name  # every slice's requests, in one point
        assert p["latency_ms"]["from_schedule"]["count"] == want, "one histogram holds them all"
        assert p["counts"]["warmup"] == warm, "the first slice's warm-up and each later slice's burst left out"
        windows = {w["index"]: w["counts"]["due"] for w in p["windows"]}
        assert [windows.get(k, 0) for k in range(len(due))] == due, "the slices lie end to end on one timeline"
        assert p["measured_s"] == pytest.approx(measured) and p["load"]["seed"] == seeds[0]


def test_slices_of_targets_alternate_in_an_order_shuffled_per_cycle(noop_url: str) -> None:
    slices, names = 4, ["a", "b", "c"]
    _, sends, lines = asyncio.run(_drive(noop_url, names, slices))
    (started,) = [t for line, t in lines if "cycle 1/" in line]  # after the unrecorded warm point
    runs = _runs(sends, started)
    assert len(runs) == slices * len(names), runs  # each slice a stretch of its own: never two of one target
    assert all(runs.count(n) == slices for n in names)
    targets = [measure.Target(n, "g", _never) for n in names]
    orders = [[t.name for t in c] for c in measure.cycle_orders(targets, "g", 0, slices)]
    assert [runs[i : i + len(names)] for i in range(0, len(runs), len(names))] == orders
    assert len({tuple(o) for o in orders}) > 1, "the order changes between cycles"
    again = [[t.name for t in c] for c in measure.cycle_orders(targets, "g", 0, slices)]
    assert again == orders, "seeded: the same round gives the same orders"
    assert [[t.name for t in c] for c in measure.cycle_orders(targets, "g", 1, slices)] != orders


def test_one_slice_is_the_contiguous_point_per_target(noop_url: str) -> None:
    names = ["a", "b", "c"]
    points, sends, _ = asyncio.run(_drive(noop_url, names, 1, n_rounds=2))
    order = ["a", "b", "c", "b", "c", "a"]  # rotated each round, as before slicing
    assert [p["target"]["name"] for p in points] == order
    assert _runs(sends)[1:] == order, "one stretch per point, after the warm point of the last target"
    for k, p in enumerate(points):
        r, i = divmod(k, len(names))
        assert p["round"] == r and p["load"]["seed"] == 1000 * r + i and "slices" not in p
        want, warm, _ = _expected([p["load"]["seed"]], [SHORT.warmup_s], SHORT.measured_s(RATE))
        assert p["counts"]["sent"] == want and p["counts"]["warmup"] == warm
    targets = [measure.Target(n, "g", _never) for n in names]
    assert measure.cycle_orders(targets, "g", 0, 1) == [targets]


def test_an_error_in_one_slice_shows_in_the_targets_point(noop_url: str) -> None:
    slices, each = 3, SHORT.measured_s(RATE) / 3
    seeds = [measure.slice_seed(0, 1, j) for j in range(slices)]  # b is second in round 0
    first = len(list(Schedule(RATE, "poisson", seeds[0]).offsets(duration_s=SHORT.warmup_s + each)))
    second = list(Schedule(RATE, "poisson", seeds[1]).offsets(duration_s=SLICE_WARMUP + each))

    def fails(name: str, call: int) -> bool:  # b's second slice only, its warm burst included
        return name == "b" and first <= call < first + len(second)

    points, _, _ = asyncio.run(_drive(noop_url, ["a", "b", "c"], slices, fails=fails))
    by = {p["target"]["name"]: p for p in points}
    errors = sum(o >= SLICE_WARMUP for o in second)
    assert by["b"]["counts"]["errors"] == errors > 0
    assert not by["b"]["valid"] and any(r.startswith("errors") for r in by["b"]["reasons"])
    assert by["b"]["outcome"]["result"] == "fail"
    windows = by["b"]["windows"]
    assert windows[0]["counts"]["errors"] == 0 and windows[1]["counts"]["errors"] > 0, "in the second slice's time"
    for name in ("a", "c"):
        assert by[name]["counts"]["errors"] == 0
        assert not any(r.startswith("errors") for r in by[name]["reasons"])


async def _never() -> Outcome:
    raise AssertionError("not sent")
