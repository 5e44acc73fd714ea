"""A deterministic synthetic summary: develops and tests the report without servers. Never a result."""

from __future__ import annotations

import random
from typing import Any

from loadtest.point import count_above
from loadtest.recorder import new_histogram
from loadtest.report.schema import SCHEMA_VERSION
from loadtest.search import capacities
from loadtest.stats import latency_summary, spectrum
from loadtest.validity import DEFAULT, Kind, Verdict, outcome, slo_verdict

SLO_MS = 25.0

# (framework, protocol) -> (service ms at low load, capacity req/s); gateway adds ~0.6 ms and 15 % capacity.
_PROFILE = {
    ("torchserve", "rest"): (4.0, 420.0),
    ("torchserve", "grpc"): (3.2, 520.0),
    ("tfserving", "rest"): (3.0, 600.0),
    ("tfserving", "grpc"): (2.2, 760.0),
}
RATES = (50.0, 100.0, 200.0, 300.0, 400.0, 550.0, 700.0)


def _hist(rng: random.Random, base_ms: float, rho: float, n: int = 1500) -> Any:
    h = new_histogram()
    for _ in range(n):
        # queueing stretch 1/(1-rho) on a lognormal service time: enough to look like a real curve
        ms = base_ms * rng.lognormvariate(0.0, 0.25) / max(0.03, 1.0 - rho) ** 0.8
        h.record_value(max(1, int(ms * 1000)))
    return h


def _point(rng: random.Random, fw: str, proto: str, path: str, rate: float) -> dict[str, Any]:
    base, cap = _PROFILE[(fw, proto)]
    if path == "gateway":
        base, cap = base + 0.6, cap * 0.85
    rho = min(rate / cap, 0.995)
    h = _hist(rng, base, rho)
    lat = latency_summary(h)
    found: list[tuple[Kind, str]] = []
    if rate > cap:
        found.append(("server", f"errors: {min(40.0, (rate - cap) / rate * 100):.1f}% of requests failed (limit 1%)"))
    elif rho > 0.85:
        found.append(("server", "drift: median latency climbs 9.0 ms over 3 windows (4.1 -> 13.1 ms; allowed 4.0 ms)"))
    if fw == "tfserving" and proto == "rest" and path == "direct" and rate == 700.0:
        found.append(("generator", "generator late: 3.2% of sends > 1 ms behind schedule (limit 1%)"))
    reasons = [r for _, r in found]
    achieved = min(rate, cap) * (0.999 if not reasons else 0.93)
    measured = 15.0
    ok = int(achieved * measured)
    errors = int(ok * 0.2) if rate > cap else 0
    counts = {
        "sent": ok + errors,
        "ok": ok,
        "errors": errors,
        "wrong": 0,
        "checked": ok,
        "late": 0,
        "warmup": int(rate * 3),
        "dropped": 0,
        "overflow": 0,
    }
    n = h.get_total_count() + errors
    over = count_above(h, int(SLO_MS * 1000)) + errors
    verdict = Verdict(not reasons, reasons, 0.0, 0.0, [k for k, _ in found])
    judged = slo_verdict(n, over, DEFAULT)
    result, why = outcome(verdict, judged, judged, n)
    return {
        "target": {
            "id": f"{fw}-{proto}-{path}:digits",
            "framework": fw,
            "protocol": proto,
            "path": path,
            "model": "digits",
        },
        "load": {"mode": "open", "schedule": "poisson", "rate_rps": rate, "batch": 1, "seed": 1},
        "measured_s": measured,
        "achieved_rps": round(achieved, 2),
        "counts": counts,
        "error_rate": round(errors / max(1, ok + errors), 4),
        "late_fraction": 0.0,
        "latency_ms": {
            "from_schedule": lat,
            "from_send": latency_summary(_hist(rng, base * 0.95, rho * 0.9)),
        },
        "spectrum_ms": spectrum(h),
        "windows": [
            {
                "index": i,
                "start_s": 5.0 * i,
                "throughput_rps": achieved,
                "p50_ms": lat["p50"],
                "p99_ms": lat["p99"],
                "counts": {"ok": ok // 3},
            }
            for i in range(3)
        ],
        "generator": {
            "cpu_pct": 20.0 + rate / 20.0,
            "late_sends": 0,
            "late_fraction": 0.0,
            "processes": [],
            "platform": {
                "cpus": [1],
                "meter": "SCHED_FIFO 2",
                "trusted": True,
                "stall_fraction": round(rng.uniform(0.0, 0.04), 4),
                "longest_stall_ms": round(rng.uniform(2.0, 30.0), 1),
                "late_explained": 0,
                "steal_pct": round(rng.uniform(0.0, 5.0), 2),
            },
        },
        "valid": not reasons,
        "reasons": reasons,
        "reason_kinds": [k for k, _ in found],
        "slo": {
            "slo_ms": SLO_MS,
            "quantile": DEFAULT.slo_quantile,
            "confidence": DEFAULT.slo_confidence,
            "requests": n,
            "over": over,
            "over_from_send": over,
            "verdict": judged,
            "verdict_from_send": judged,
        },
        "outcome": {"result": result, "why": why},
        "resources": {
            fw: {
                "cpu_s": round(2.0 * achieved * measured / 1000, 3),
                "interval_s": measured,
                "cpu_ms_per_request": 2.0 if fw == "torchserve" else 1.4,
                "rss_peak_bytes": (1010 if fw == "torchserve" else 930) * 2**20,
            },
            "gpu": "no GPU",
        },
        "hlogs": [],
    }


def synthetic_summary(stand_in: bool = True, seed: int = 1) -> dict[str, Any]:
    """A plausible summary.json: 8 digits targets, INVALID points, floor, decomposition, batching."""
    rng = random.Random(seed)
    points = [
        _point(rng, fw, proto, path, rate)
        for (fw, proto) in _PROFILE
        for path in ("direct", "gateway")
        for rate in RATES
    ]
    floor = [
        {
            "framework": fw,
            "model": "digits",
            "batch": b,
            "engine": eng,
            "latency_ms": latency_summary(_hist(rng, base * b**0.5, 0.0)),
        }
        for fw, eng, base in (("torchserve", "torch 2.13.0", 0.12), ("tfserving", "tensorflow 2.20.0", 0.35))
        for b in (1, 8, 32)
    ]
    decomposition = []
    for (fw, proto), (base, _) in _PROFILE.items():
        for path in ("direct", "gateway"):
            fl = 0.12 if fw == "torchserve" else 0.35
            gw = 0.6 if path == "gateway" else None
            decomposition.append(
                {
                    "target": f"{fw}-{proto}-{path}:digits",
                    "total_ms": base + (gw or 0.0),
                    "gateway_ms": gw,
                    "upstream_ms": 0.4 if gw else None,
                    "queue_ms": base * 0.3,
                    "compute_ms": base * 0.3,
                    "floor_ms": fl,
                }
            )
    batching = []
    for fw, cap in (("torchserve", 500.0), ("tfserving", 700.0)):
        for mbs, timeout in ((1, 0), (4, 1000), (8, 2000), (16, 5000), (32, 10000), (8, 500)):
            tput = cap * mbs**0.45 * rng.uniform(0.9, 1.05)
            p99 = 3.0 + timeout / 1000.0 * 1.4 + mbs * 0.2 + rng.uniform(0, 1)
            bad = mbs == 32 and fw == "tfserving"
            batching.append(
                {
                    "framework": fw,
                    "model": "digits",
                    "max_batch_size": mbs,
                    "batch_timeout_us": timeout,
                    "throughput_rps": round(tput, 1),
                    "p99_ms": round(p99, 2),
                    "valid": not bad,
                    "reasons": ["unstable throughput: last 3 windows vary 14% > 10%"] if bad else [],
                }
            )
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "id": "synthetic",
            "started_at": "2026-01-01T00:00:00+00:00",
            "mode": "synthetic",
            "command": "python -m loadtest.report --synthetic",
            "host": {"cpus": 2, "platform": "synthetic"},
            "criteria": DEFAULT.as_dict(),
            "slo_p99_ms": SLO_MS,
            "stack": "native",
            "tfserving_stand_in": stand_in,
            "notes": ["SYNTHETIC DATA: generated to develop the report, not measured."],
        },
        "points": points,
        "floor": floor,
        "decomposition": decomposition,
        "batching": batching,
        "capacity": capacities(points),
        "resources": {
            "torchserve": _cost(790, 1010, 0.0020, 16.2, {"digits": 6.7}, 570_965, False),
            "tfserving": _cost(814, 930, 0.0014, 8.8, {"digits": 0.9}, 699_137, stand_in),
            "gateway": _cost(91, 120, 0.0009, None, {}, None, False),
            "gpu": "no GPU",
        },
    }


def _cost(
    idle_mib: int, peak_mib: int, cpu_s: float, cold: float | None, load: dict, size: int | None, stand_in: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "rss_idle_bytes": idle_mib * 2**20,
        "rss_peak_bytes": peak_mib * 2**20,
        "cpu_seconds_per_request": cpu_s,
        "requests_per_core_s": round(1 / cpu_s, 1),
        "at_point": None,
    }
    if cold is not None:
        entry |= {
            "cold_start_s": cold,
            "cold_start_runs_s": [cold],
            "model_load_s": load,
            "artifact_bytes": {"digits": size},
            "stand_in": stand_in,
        }
    return entry
