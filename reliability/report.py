"""docs/reliability.md from the chaos figures (reliability.chaos), with the machine and versions they ran on."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def environment() -> dict[str, str]:
    """Machine and versions, for the record."""
    import grpc
    import psutil

    versions = {"python": platform.python_version(), "grpcio": grpc.__version__}
    for mod in ("fastapi", "uvicorn", "httpx", "torch", "tensorflow"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            pass
    try:
        from importlib.metadata import version

        versions["torchserve"] = version("torchserve")
    except Exception:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "machine": f"{cpu}, {psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.system()} {platform.release()}",
        **versions,
    }


def render(figures: dict[str, Any], command: str, env: dict[str, str], broken: list[str]) -> str:
    """docs/reliability.md."""
    out = [
        "# Reliability under load, faults and bad input — measured",
        "",
        f"Written by `{command}` on {figures['when']} (`make chaos`; `make soak` for the 10-minute soak).",
        "Real TorchServe and the TF Serving **stand-in** (not TF Serving) natively, the gateway as a real",
        "`python -m gateway` process, open-loop constant-rate load (latency from the scheduled send time).",
        "",
        "Machine and versions: " + "; ".join(f"{k} {v}" for k, v in env.items()),
        "",
        f"Verdict: **{'all bounds met' if not broken else 'BOUNDS BROKEN: ' + '; '.join(broken)}**",
        "",
    ]
    for name in ("kill_torchserve", "kill_tfserving"):
        f = figures.get(name)
        if not f:
            continue
        out += [
            f"## SIGKILL {f['victim']} under load (failover policy, {f['victim']} primary)",
            "",
            f"{f['rate']:g} req/s for {f['duration_s']:g} s; SIGKILL of the whole process group, restarted at once",
            "on the same ports through the supervisor's `Stack.up`.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| requests sent | {f['sent']} |",
            f"| succeeded | {f['ok']} |",
            f"| failed explicitly (status) | {f['explicit_errors']} {f['statuses']} |",
            f"| lost (no answer within {f['client_timeout_s']:g} s = route timeout + 2 s) | {f['lost']} |",
            f"| in flight at the kill | {f['in_flight_at_kill']} |",
            f"| failover success rate (requests not in flight at the kill) | {f['success_rate_not_in_flight']:.4%} |",
            f"| circuit open after the kill (breaker_failures={f['breaker_failures']}) "
            f"| {_s(f['open_after_kill_s'])} |",
            f"| restart until ready | {f['restart_s']} s |",
            f"| circuit closed after the kill / after the restart was ready | "
            f"{_s(f['close_after_kill_s'])} / {_s(f['close_after_restart_s'])} |",
            f"| share served by {f['victim']} after the circuit closed | {f['victim_share_after_close']:.1%} |",
            f"| p99 latency from schedule / slowest answer | {f['p99_ms']:.1f} ms / {f['max_latency_s']} s |",
            f"| served by | {f['served_by']} |",
            "",
        ]
    if figures.get("kill_torchserve") or figures.get("kill_tfserving"):
        out += [
            "Gateway settings in both kill runs: `breaker_failures=3`, `breaker_cooldown_s=2`,",
            "`health_interval_s=0.5`,",
            "route `timeout_s=3`. The restart includes waiting for the dead server's ports to become bindable",
            '(its sockets linger in FIN_WAIT2 until clients close their ends). A negative "after the restart was',
            "ready\" means the gateway's half-open probe got through before the supervisor's own readiness",
            "poll (which also waits for every TorchServe port) declared the server ready.",
            "",
        ]
    if (s := figures.get("slow_backend")) is not None:
        lat = s["timeout_latency_s"]
        out += [
            "## Slow, resetting and dropping backend (reliability/faultproxy.py in front of the stand-in's REST)",
            "",
            "| figure | value |",
            "|---|---|",
            f"| configured upstream timeout | {s['configured_timeout_s']} s |",
            f"| answers while every reply is delayed 4× the timeout | {s['timeout_statuses']} |",
            f"| time to the 504 (min / max) | {min(lat)} s / {max(lat)} "
            f"s (error {max(lat) - s['configured_timeout_s']:+.3f} s) |",
            f"| overload: {s['overload_rate']:g} req/s at a backend that holds each request "
            f"{0.8 * s['configured_timeout_s']:g} "
            f"s | sent {s['overload_sent']}, {s['overload_statuses']}, lost {s['overload_lost']} |",
            f"| 429/503 latency p50 / p99 (from scheduled send) | "
            f"{s['rejection_p50_ms']} ms / {s['rejection_p99_ms']} ms |",
            f"| Retry-After on every 429 and 503 | {s['retry_after_present']} |",
            f"| in-flight limit / highest gauge seen | {s['max_in_flight']} / {s['max_in_flight_seen']:g} |",
            f"| gateway RSS before / after | {s['rss_before_mb']} MiB / {s['rss_after_mb']} MiB |",
            f"| backend resets connections | {s['reset_statuses']} |",
            f"| backend drops connections | {s['drop_statuses']} |",
            "",
        ]
    if (r := figures.get("reconnect")) is not None:
        out += [
            "## Backend restart: pooled connections recover without a gateway restart",
            "",
            f"Stand-in SIGKILLed and restarted on the same ports "
            f"({r['restart_s']} s); one gateway per upstream protocol.",
            "",
            "| upstream protocol | answers while down | first success after the restart |",
            "|---|---|---|",
            *[f"| {p} | {r['down_statuses'][p]} | {_s(r['recovered_after_s'][p])} |" for p in r["protocols"]],
            "",
            "Graceful drain under load (SIGTERM, REST) is proven by tests/gateway/e2e/test_e2e_drain.py.",
            "",
        ]
    if (k := figures.get("soak")) is not None:
        out += [
            f"## Soak: {k['rate']:g} req/s for {k['duration_s'] / 60:g} min (failover route)",
            "",
            "The soak rate is half the kill-scenario rate (`--rate`), not half of a measured capacity: no",
            "capacity sweep runs here (`make bench` measures throughput). The machine was shared while it ran.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| sent / ok / explicit errors / lost | {k['sent']} / {k['ok']} / {k['explicit_errors']} / {k['lost']} |",
            f"| latency p50 / p99 from schedule, after the warm-up | {k['p50_ms']:.1f} ms / {k['p99_ms']:.1f} ms |",
            f"| gateway RSS after {k['warmup_s']:g} s warm-up / at the end "
            f"| {k['rss_after_warmup_mb']} MiB / {k['rss_end_mb']} MiB |",
            f"| RSS growth (bound < 10 %) | {k['rss_growth']:+.2%} |",
            f"| late sends (> 1 ms behind schedule) | {k['late_sends']} |",
            f"| judged as a `make bench` point (loadtest.validity) | {_verdict(k.get('validity'))} |",
            "",
        ]
    out += [
        "## Bad input and security",
        "",
        "Asserted by tests, not measured: `tests/badinput/` (a corpus of malformed REST and gRPC requests against",
        "the real gateway: every one a 4xx / INVALID_ARGUMENT naming the problem, never a 5xx, the gateway healthy",
        "after each batch; hypothesis fuzzing of the codecs; schemathesis against the app's OpenAPI) and",
        "`tests/security/` (ingress keys 401/403 on REST and gRPC, constant-time comparison, management APIs",
        "unreachable, path traversal, header and body limits, tokens absent from logs and metrics).",
        "",
        "Raw figures: `results/chaos/figures.json`.",
        "",
    ]
    return "\n".join(out)


def _verdict(v: dict[str, Any] | None) -> str:
    if v is None:
        return "not judged (figures from before the judge)"
    head = "VALID" if v["valid"] else "INVALID: " + "; ".join(v["reasons"])
    return f"{head}; {v['outcome']['result']} ({v['outcome']['why']})"


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.3f} s"
