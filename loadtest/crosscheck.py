"""Cross-check the harness against independent tools (Debian packages `hey` and `wrk`) on REST targets.

`make bench` runs `check_at_capacity`: for each stack's headline REST target, hey paces requests at the capacity the
rate search reported, and the report puts hey's p99 beside the harness's, flagging a disagreement over 20 %.

The command below runs the closed-loop comparison with wrk. wrk is closed loop (each connection sends when its
previous answer arrived), so the comparison is made where closed and open loop agree on meaning: the median
latency at a low fixed concurrency, and the throughput at a fixed concurrency, both measured by the harness in
closed-loop mode (`--concurrency`) on the same target, the same body and for the same time.
Results go to `<out>/crosscheck.json`.
  python -m loadtest.crosscheck --target tfserving-rest-direct:digits --concurrency 1,4
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from contract import tskeys
from loadtest.stack import discover
from loadtest.targets import Target
from loadtest.users.codecs import calls_for

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
DISAGREEMENT = 0.20
"""Relative p99 difference above which the report flags a cross-check."""
HEY_WORKER_RPS = 50.0
"""Each hey worker is paced at most this fast (20 ms apart), so a worker never waits on its previous answer at
the latencies checked, and hey's pacing holds like an open loop's."""


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/sec and the --latency percentiles (ms) of wrk's report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pct = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(rps.group(1)) if rps else None, **pct, "non_2xx": int(errors.group(1)) if errors else 0}


def wrk(t: Target, body: bytes, headers: dict[str, str], concurrency: int, seconds: int) -> dict[str, Any]:
    """Run wrk (one thread, `concurrency` connections) with a Lua script POSTing `body`."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        lua = Path(tmp) / "post.lua"
        sets = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
        lua.write_text(
            f'wrk.method = "POST"\nlocal f = io.open("{tmp}/body.json", "rb")\n'
            f'wrk.body = f:read("*a")\nf:close()\n{sets}',
            encoding="utf-8",
        )
        url = request_url(t)
        cmd = [exe, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(lua), url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout) | {"command": " ".join([*cmd[:-3], "post.lua", url])}


def hey(t: Target, body: bytes, headers: dict[str, str], rate: float, seconds: float, warmup_s: float = 3.0) -> dict:
    """hey at `rate` req/s (workers x per-worker rate limit) for `warmup_s + seconds`; percentiles (ms) of the
    requests started after the warm-up, from hey's per-request CSV, so none is read off a coarse summary."""
    exe = shutil.which("hey")
    if exe is None:
        raise FileNotFoundError("hey is not installed: apt-get install hey (make setup does it)")
    workers = max(4, math.ceil(rate / HEY_WORKER_RPS))
    plain = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "body"
        path.write_bytes(body)
        cmd = [exe, "-z", f"{warmup_s + seconds:g}s", "-c", str(workers), "-q", f"{rate / workers:.4f}"]
        cmd += ["-m", "POST", "-T", ctype, "-D", str(path), "-o", "csv"]
        cmd += [x for k, v in plain.items() for x in ("-H", f"{k}: {v}")]
        cmd.append(request_url(t))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup_s + seconds + 60, check=True)
    rows = [r for r in csv.DictReader(io.StringIO(done.stdout)) if float(r["offset"]) >= warmup_s]
    ok = sorted(float(r["response-time"]) * 1e3 for r in rows if r["status-code"] == "200")
    secret = {str(path): "body.json"} | {f"{k}: {v}": f"'{k}: <key>'" for k, v in plain.items() if k == "Authorization"}
    shown = " ".join(secret.get(x, x) for x in cmd[1:-1])  # the key never lands in summary.json
    return {
        "tool": "hey " + _version("hey"),
        "rate_rps": rate,
        "workers": workers,
        "requests": len(rows),
        "non_200": len(rows) - len(ok),
        "achieved_rps": round(len(ok) / seconds, 3),
        "p50": _quantile(ok, 0.50),
        "p99": _quantile(ok, 0.99),
        "command": f"hey {shown} {request_url(t)}",
    }


def _quantile(sorted_ms: list[float], q: float) -> float | None:
    """The nearest-rank quantile (as HdrHistogram reports it), rounded to µs."""
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, math.ceil(q * len(sorted_ms)) - 1)], 3)


def _version(package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def request_url(t: Target) -> str:
    """The native predict URL of a direct REST target."""
    return t.address + ("/predictions/" + t.model if t.framework == "torchserve" else f"/v1/models/{t.model}:predict")


def check_at_capacity(
    point: dict,
    t: Target,
    artifacts: Path,
    run_dir: Path,
    seconds: float = 15.0,
    beyond: float | None = None,
    slo_ms: float | None = None,
) -> dict:
    """hey against `t` at the offered rate of `point` (a passing point of the harness): both p99s side by side.
    With `beyond` (the rate where the harness's search stopped for a reason that is not the server's: the generator,
    noise, or the end of the search), hey also runs there and says whether the server sustains it (p99 within
    `slo_ms`, every answer a 200): the server's capacity then lies above what the harness could show.

    hey measures from the actual send and is closed loop per worker; paced far below its workers' limit it sends on
    time, so at a rate the server sustains both tools should see the same tail. A disagreement over 20 % is flagged.
    """
    call = calls_for(t, artifacts, 1, limit=1)[0]
    headers = dict(call.headers)
    if t.framework == "torchserve":
        headers["Authorization"] = "Bearer " + tskeys.read_key(tskeys.key_file_in(run_dir))
    theirs = hey(t, call.body, headers, float(point["load"]["rate_rps"]), seconds)
    ours = point["latency_ms"]["from_schedule"]
    diff = abs(ours["p99"] - theirs["p99"]) / theirs["p99"] if theirs["p99"] and ours["p99"] else None
    return {
        "target": t.id,
        "rate_rps": point["load"]["rate_rps"],
        "harness": {"p50": ours["p50"], "p99": ours["p99"], "achieved_rps": point["achieved_rps"]},
        "independent": theirs,
        "p99_disagreement": None if diff is None else round(diff, 4),
        "flagged": diff is None or diff > DISAGREEMENT,
    } | ({} if beyond is None else {"beyond": _beyond(t, call.body, headers, beyond, seconds, slo_ms)})


def _beyond(t: Target, body: bytes, headers: dict[str, str], rate: float, seconds: float, slo_ms: float | None) -> dict:
    run = hey(t, body, headers, rate, seconds)
    return run | {"sustained": run["non_200"] == 0 and run["p99"] is not None and run["p99"] <= (slo_ms or 0.0)}


def harness(t: Target, concurrency: int, seconds: int, out: Path, state: Path) -> dict[str, Any]:
    """The same target at the same concurrency with `python -m loadtest.run --concurrency`."""
    cmd = [
        sys.executable,
        "-m",
        "loadtest.run",
        "--state",
        str(state),
        "--targets",
        t.id,
        "--models",
        t.model,
        "--concurrency",
        str(concurrency),
        "--no-floor",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    p = json.loads((out / "summary.json").read_text(encoding="utf-8"))["points"][0]
    lat = p["latency_ms"]["from_send"]
    return {
        "rps": p["achieved_rps"],
        "p50": lat["p50"],
        "p90": lat["p90"],
        "p99": lat["p99"],
        "valid": p["valid"],
        "generator_cpu_pct": p["generator"]["cpu_pct"],
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.crosscheck", description=__doc__)
    ap.add_argument("--target", default="tfserving-rest-direct:digits")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--state", type=Path, default=Path("run/state.json"))
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--out", type=Path, default=Path("results/crosscheck"))
    args = ap.parse_args(argv)
    stack = discover("auto", args.state)
    name, _, model = args.target.partition(":")
    fw, proto, path = name.split("-")
    t = stack.target(fw, proto, path, model)
    if (proto, path) != ("rest", "direct"):
        raise SystemExit("wrk speaks HTTP/1.1: pick a direct REST target")
    call = calls_for(t, args.artifacts, 1, limit=1)[0]
    headers = dict(call.headers)
    if fw == "torchserve":
        headers["Authorization"] = "Bearer " + tskeys.read_key(tskeys.key_file_in(stack.run_dir))
    seconds = 18  # the harness's default point: 3 s warm-up + 15 s measured
    rows = []
    for c in (int(x) for x in args.concurrency.split(",")):
        ours = harness(t, c, seconds, args.out / f"harness-c{c}", args.state)
        theirs = wrk(t, call.body, headers, c, seconds)
        rows.append({"concurrency": c, "harness": ours, "wrk": theirs})
        print(
            f"c={c}: harness {ours['rps']:.1f} req/s p50 {ours['p50']:.2f} ms | "
            f"wrk {theirs['rps']:.1f} req/s p50 {theirs.get('p50', float('nan')):.2f} ms"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"target": t.id, "tool": "wrk 4.1.0 (Debian)", "seconds": seconds, "rows": rows}
    (args.out / "crosscheck.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
