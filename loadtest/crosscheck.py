"""Cross-check the harness against an independent tool (wrk, Debian package `wrk`) on one REST target.

wrk is closed loop (each connection sends when its previous answer arrived), so the comparison is made where
closed and open loop agree on meaning: the median latency at a low fixed concurrency, and the throughput at
a fixed concurrency, both measured by the harness in closed-loop mode (`--concurrency`) on the same target,
the same body and for the same time. Results go to `<out>/crosscheck.json`.
  python -m loadtest.crosscheck --target tfserving-rest-direct:digits --concurrency 1,4
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtest.samples import load_reference
from loadtest.stack import discover
from loadtest.targets import Target, read_inference_key
from loadtest.users.codecs import build_calls

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


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
        url = t.address + (
            "/predictions/" + t.model if t.framework == "torchserve" else f"/v1/models/{t.model}:predict"
        )
        cmd = [exe, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(lua), url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout) | {"command": " ".join([*cmd[:-3], "post.lua", url])}


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
    call = build_calls(t, load_reference(model, args.artifacts), 1, limit=1)[0]
    headers = dict(call.headers)
    if fw == "torchserve":
        headers["Authorization"] = "Bearer " + read_inference_key(stack.run_dir / "torchserve" / "key_file.json")
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
