"""Chaos scenarios shared by tests/reliability (short) and reliability/chaos.py (`make chaos`, long): each returns
its figures."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from reliability import load, procs
from reliability.faultproxy import FaultProxy
from supervisor.stack import Stack

OTHER = {"torchserve": "tfserving", "tfserving": "torchserve"}
CIRCUIT = "twinserve_gateway_circuit_state"


def _route_env(**fields: Any) -> dict[str, str]:
    return {f"TWINSERVE_ROUTES__MODELS__DIGITS__{k.upper()}": str(v) for k, v in fields.items()}


def _limits_env(**fields: Any) -> dict[str, str]:
    return {f"TWINSERVE_LIMITS__{k.upper()}": str(v) for k, v in fields.items()}


class CircuitWatch:
    """Polls the gateway's circuit gauge for one backend every `interval_s`; keeps (perf_counter, state)."""

    def __init__(self, gateway: procs.GatewayProcess, backend: str, interval_s: float = 0.05) -> None:
        self.gateway, self.backend, self.interval_s = gateway, backend, interval_s
        self.changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        key = f'{CIRCUIT}{{backend="{self.backend}"}}'
        last = None
        while not self._stop.is_set():
            try:
                state = int(self.gateway.metric(CIRCUIT).get(key, -1))
            except requests.RequestException:
                state = -1
            if state != last and state >= 0:
                self.changes.append((time.perf_counter(), state))
                last = state
            self._stop.wait(self.interval_s)

    def first(self, state: int, after: float) -> float | None:
        """Time of the first change to `state` at or after `after`."""
        return next((t for t, s in self.changes if s == state and t >= after), None)

    def __enter__(self) -> CircuitWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class KillFigures:
    """What a SIGKILL-under-load run measured."""

    victim: str
    rate: float
    duration_s: float
    sent: int
    ok: int
    explicit_errors: int
    lost: int
    statuses: dict[str, int]
    in_flight_at_kill: int
    success_rate_not_in_flight: float
    breaker_failures: int
    open_after_kill_s: float | None
    restart_s: float
    close_after_restart_s: float | None
    """From the supervisor seeing the restarted server ready to the circuit closing (< 0: the gateway saw it first)."""
    close_after_kill_s: float | None
    victim_share_after_close: float
    p99_ms: float
    max_latency_s: float
    client_timeout_s: float
    served_by: dict[str, int] = field(default_factory=dict)


def kill_under_load(
    stack: Stack,
    victim: str,
    rate: float = 40.0,
    duration_s: float = 40.0,
    kill_at_s: float = 5.0,
    route_timeout_s: float = 3.0,
    breaker_failures: int = 3,
    cooldown_s: float = 2.0,
) -> KillFigures:
    """Failover route with `victim` primary; SIGKILL it at `kill_at_s`, restart it at once, keep the load on."""
    env = {
        **_route_env(policy="failover", backend=victim, timeout_s=route_timeout_s),
        **_limits_env(breaker_failures=breaker_failures, breaker_cooldown_s=cooldown_s, health_interval_s=0.5),
    }
    client_timeout = route_timeout_s + 2.0
    marks: dict[str, float] = {}
    with procs.GatewayProcess(stack, env) as gw, CircuitWatch(gw, victim) as watch:

        def chaos(start: float) -> None:
            def act() -> None:
                time.sleep(max(0.0, start + kill_at_s - time.perf_counter()))
                marks["kill"] = procs.kill(stack, victim)
                marks["ready"] = procs.restart(stack, victim)

            threading.Thread(target=act, daemon=True).start()
            marks["start"] = start

        result = load.run(
            gw.url + "/v2/models/digits/infer", load.digits_body(), rate, duration_s, client_timeout, on_start=chaos
        )
        deadline = time.monotonic() + 180  # the restart may still be running if the load ended first
        while "ready" not in marks and time.monotonic() < deadline:
            time.sleep(0.2)
    start, kill_t = marks["start"], marks["kill"]
    ready_t = marks.get("ready", float("inf"))
    kill_rel = kill_t - start
    in_flight = [s for s in result.samples if s.due <= kill_rel < s.done]
    others = [s for s in result.samples if not (s.due <= kill_rel < s.done)]
    opened = watch.first(2, kill_t)
    # The supervisor's readiness poll may notice the restart after the gateway's probe already closed the
    # circuit, so "closed" is the first close after the open, and its delay from "ready" may be negative.
    closed = watch.first(0, opened) if opened is not None and ready_t != float("inf") else None
    after_close = result.backends(since=(closed - start + 0.5) if closed else float("inf"))
    total_after = sum(after_close.values())
    return KillFigures(
        victim=victim,
        rate=rate,
        duration_s=duration_s,
        sent=result.sent,
        ok=result.ok,
        explicit_errors=result.explicit_errors,
        lost=result.lost,
        statuses={str(k): v for k, v in sorted(result.statuses().items())},
        in_flight_at_kill=len(in_flight),
        success_rate_not_in_flight=sum(s.status == 200 for s in others) / max(1, len(others)),
        breaker_failures=breaker_failures,
        open_after_kill_s=None if opened is None else round(opened - kill_t, 3),
        restart_s=round(ready_t - kill_t, 1),
        close_after_restart_s=None if closed is None else round(closed - ready_t, 3),
        close_after_kill_s=None if closed is None else round(closed - kill_t, 3),
        victim_share_after_close=after_close[victim] / total_after if total_after else 0.0,
        p99_ms=result.latency_ms(99),
        max_latency_s=round(max(s.done - s.due for s in result.samples), 3),
        client_timeout_s=client_timeout,
        served_by=dict(result.backends()),
    )


@dataclass
class SlowFigures:
    """What the slow-backend run measured."""

    configured_timeout_s: float
    timeout_statuses: dict[str, int]
    timeout_latency_s: list[float]
    overload_rate: float
    overload_sent: int
    overload_statuses: dict[str, int]
    overload_lost: int
    rejection_p50_ms: float
    rejection_p99_ms: float
    retry_after_present: bool
    max_in_flight: int
    max_in_flight_seen: float
    rss_before_mb: float
    rss_after_mb: float
    reset_statuses: dict[str, int]
    drop_statuses: dict[str, int]


def slow_backend(
    stack: Stack, timeout_s: float = 0.5, overload_rate: float = 40.0, overload_s: float = 4.0
) -> SlowFigures:
    """The stand-in's REST API behind our fault proxy: delays past the timeout, overload, resets, drops."""
    layout = stack.layout
    proxy = FaultProxy("127.0.0.1", layout.ports.tf_rest).start()
    max_in_flight = 4
    env = {
        **_route_env(policy="pin", backend="tfserving", timeout_s=10),
        **_limits_env(breaker_failures=100000, health_interval_s=60, retry_after_s=1),
        "TWINSERVE_BACKENDS__TFSERVING__PROTOCOL": "rest",
        "TWINSERVE_BACKENDS__TFSERVING__REST_URL": f"http://127.0.0.1:{proxy.port}",
        "TWINSERVE_BACKENDS__TFSERVING__TIMEOUT_S": str(timeout_s),
        "TWINSERVE_BACKENDS__TFSERVING__MAX_IN_FLIGHT": str(max_in_flight),
        "TWINSERVE_BACKENDS__TFSERVING__MAX_QUEUE": "4",
        "TWINSERVE_BACKENDS__TFSERVING__QUEUE_TIMEOUT_S": "0.1",
    }
    url_suffix = "/v2/models/digits/infer"
    body = load.digits_body()
    headers = {"Content-Type": "application/json"}
    try:
        with procs.GatewayProcess(stack, env) as gw:
            url = gw.url + url_suffix
            assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 200
            rss_before = gw.rss_bytes()
            # 1. every answer slower than the timeout: 504 at the timeout
            proxy.set("delay", timeout_s * 4)
            statuses: dict[str, int] = {}
            lat = []
            for _ in range(8):
                t = time.perf_counter()
                r = requests.post(url, data=body, headers=headers, timeout=timeout_s + 5)
                lat.append(round(time.perf_counter() - t, 3))
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            # 2. overload: the slow backend holds every slot; the rest must be refused fast with Retry-After
            proxy.set("delay", timeout_s * 0.8)
            seen = [0.0]
            stop = threading.Event()

            def watch_in_flight() -> None:
                while not stop.is_set():
                    try:
                        v = gw.metric("twinserve_gateway_in_flight")
                        seen[0] = max(seen[0], *v.values(), 0.0)
                    except requests.RequestException:
                        pass
                    stop.wait(0.05)

            watcher = threading.Thread(target=watch_in_flight, daemon=True)
            watcher.start()
            over = load.run(url, body, overload_rate, overload_s, timeout_s + 5)
            stop.set()
            watcher.join(5)
            rejected = sorted((s.done - s.due) * 1000 for s in over.samples if s.status in (429, 503))
            retry_after = all(s.retry_after for s in over.samples if s.status in (429, 503))
            # 3. connections reset / dropped by the "backend": explicit errors, fast
            proxy.set("reset")
            proxy.cut()
            reset = _statuses(url, body, 5)
            proxy.set("drop")
            drop = _statuses(url, body, 5)
            proxy.set("pass")
            rss_after = gw.rss_bytes()
    finally:
        proxy.stop()
    return SlowFigures(
        configured_timeout_s=timeout_s,
        timeout_statuses=statuses,
        timeout_latency_s=lat,
        overload_rate=overload_rate,
        overload_sent=over.sent,
        overload_statuses={str(k): v for k, v in sorted(over.statuses().items())},
        overload_lost=over.lost,
        rejection_p50_ms=round(_q(rejected, 0.5), 1),
        rejection_p99_ms=round(_q(rejected, 0.99), 1),
        retry_after_present=retry_after,
        max_in_flight=max_in_flight,
        max_in_flight_seen=seen[0],
        rss_before_mb=round(rss_before / 2**20, 1),
        rss_after_mb=round(rss_after / 2**20, 1),
        reset_statuses=reset,
        drop_statuses=drop,
    )


def _q(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _statuses(url: str, body: bytes, n: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for _ in range(n):
        try:
            code = str(
                requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10).status_code
            )
        except requests.RequestException:
            code = "0"
        out[code] = out.get(code, 0) + 1
    return out


@dataclass
class ReconnectFigures:
    """Recovery of pooled upstream connections after the stand-in restarted on the same ports."""

    protocols: list[str]
    down_statuses: dict[str, dict[str, int]]
    recovered_after_s: dict[str, float | None]
    restart_s: float


def restart_reconnect(stack: Stack, budget_s: float = 30.0) -> ReconnectFigures:
    """One gateway per upstream protocol pinned to the TF side; kill and restart the stand-in; both recover."""
    protocols = ["rest", "grpc"]
    body = load.digits_body()
    headers = {"Content-Type": "application/json"}
    gws = []
    try:
        for proto in protocols:
            env = {
                **_route_env(policy="pin", backend="tfserving", timeout_s=3),
                **_limits_env(health_interval_s=0.5, breaker_cooldown_s=1.0),
                "TWINSERVE_BACKENDS__TFSERVING__PROTOCOL": proto,
            }
            gws.append(procs.GatewayProcess(stack, env).start())
        for gw in gws:  # warm pooled connections / channels first
            for _ in range(5):
                assert requests.post(gw.url + "/v2/models/digits/infer", data=body, headers=headers, timeout=5).ok
        killed = procs.kill(stack, "tfserving")
        down = {p: _statuses(gw.url + "/v2/models/digits/infer", body, 3) for p, gw in zip(protocols, gws, strict=True)}
        ready = procs.restart(stack, "tfserving")
        recovered: dict[str, float | None] = {}
        for proto, gw in zip(protocols, gws, strict=True):
            recovered[proto] = None
            deadline = time.perf_counter() + budget_s
            while time.perf_counter() < deadline:
                try:
                    r = requests.post(gw.url + "/v2/models/digits/infer", data=body, headers=headers, timeout=5)
                    if r.status_code == 200:
                        recovered[proto] = round(time.perf_counter() - ready, 3)
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
    finally:
        for gw in gws:
            gw.stop()
    return ReconnectFigures(protocols, down, recovered, round(ready - killed, 1))


@dataclass
class SoakFigures:
    """A steady soak through the gateway."""

    rate: float
    duration_s: float
    warmup_s: float
    sent: int
    ok: int
    explicit_errors: int
    lost: int
    p50_ms: float
    p99_ms: float
    rss_after_warmup_mb: float
    rss_end_mb: float
    rss_growth: float
    late_sends: int
    validity: dict[str, Any]
    """The soak as one `make bench` point (loadtest.validity): valid, reasons, outcome against digits' SLO."""


def soak(stack: Stack, rate: float, duration_s: float, warmup_s: float = 10.0) -> SoakFigures:
    """Constant-rate load (failover route) for `duration_s`; RSS after `warmup_s` vs at the end; latencies and the
    validity verdict leave the warm-up out."""
    env = _route_env(policy="failover", backend="torchserve", timeout_s=3)
    rss: dict[str, int] = {}
    with procs.GatewayProcess(stack, env) as gw:
        url = gw.url + "/v2/models/digits/infer"

        def sample_rss(start: float) -> None:
            def at_warmup() -> None:
                time.sleep(max(0.0, start + warmup_s - time.perf_counter()))
                rss["warm"] = gw.rss_bytes()

            threading.Thread(target=at_warmup, daemon=True).start()

        body, check = load.checked_digits(stack.layout.artifacts)
        result = load.run(url, body, rate, duration_s, 5.0, on_start=sample_rss, warmup_s=warmup_s, check=check)
        rss["end"] = gw.rss_bytes()
    return SoakFigures(
        rate=rate,
        duration_s=duration_s,
        warmup_s=warmup_s,
        sent=result.sent,
        ok=result.ok,
        explicit_errors=result.explicit_errors,
        lost=result.lost,
        p50_ms=result.latency_ms(50),
        p99_ms=result.latency_ms(99),
        rss_after_warmup_mb=round(rss["warm"] / 2**20, 1),
        rss_end_mb=round(rss["end"] / 2**20, 1),
        rss_growth=round(rss["end"] / rss["warm"] - 1, 4),
        late_sends=result.late_sends,
        validity=result.judged(),
    )


def as_dict(figures: Any) -> dict[str, Any]:
    """A dataclass of figures as a plain dict (for JSON)."""
    return asdict(figures)
