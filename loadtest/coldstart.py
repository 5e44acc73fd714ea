"""Cold start per stack: from the server's process start to its first correct inference (`make coldstart`).

Each run starts a private instance of one server (the supervisor's Stack, in a temporary run directory on free
ports, beside any running stack, which it never touches), polls its REST predict endpoint every 20 ms from the
moment of the spawn, checks each answer against the exported reference, and stops the instance. The median of
`--runs` restarts is the figure; every run is kept. `make bench` runs it once per stack (skip: --no-coldstart).
  python -m loadtest.coldstart --runs 5 --models digits
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console

from contract import tskeys
from loadtest.targets import Target
from loadtest.users.codecs import answer_is_right, calls_for

console = Console(stderr=True)
POLL_S = 0.02
STACKS = ("torchserve", "tfserving")


def _first_correct(t: Target, key_file: Path | None, artifacts: Path, done: threading.Event, out: dict) -> None:
    """Send the reference request until an answer is right; record the perf_counter time it arrived."""
    call = calls_for(t, artifacts, 1, limit=1)[0]
    url = f"http://{t.host}:{t.port}{call.path}"
    while not done.is_set():
        headers = dict(call.headers)
        try:
            if key_file is not None:
                headers["Authorization"] = "Bearer " + tskeys.read_key(key_file)
            req = urllib.request.Request(url, call.body, headers, method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                body = resp.read()
            if answer_is_right(t, call, body):
                out["at"] = time.perf_counter()
                return
        except (OSError, ValueError, KeyError, urllib.error.URLError):  # not up yet: no port, no key, 503
            pass
        time.sleep(POLL_S)


def measure_once(framework: str, model: str, artifacts: Path, timeout_s: float = 240.0) -> float:
    """Seconds from spawning `framework` (serving every exported model) to its first correct `model` answer."""
    from supervisor import Ports, Stack

    work = Path(tempfile.mkdtemp(prefix="ltc-"))  # short: TorchServe's socket paths are length-capped
    ports = Ports.ephemeral()
    port = ports.ts_inference if framework == "torchserve" else ports.tf_rest
    t = Target(framework, "rest", "direct", model, "127.0.0.1", port)
    key_file = tskeys.key_file_in(work / "run") if framework == "torchserve" else None
    stack = Stack(work / "run", artifacts, ports)
    done, result = threading.Event(), dict[str, float]()
    poller = threading.Thread(target=_first_correct, args=(t, key_file, artifacts, done, result), daemon=True)
    try:
        started = time.perf_counter()
        poller.start()
        stack.up([framework], timeout=timeout_s)
        poller.join(timeout=max(1.0, timeout_s - (time.perf_counter() - started)))
        if "at" not in result:
            raise RuntimeError(f"{framework}: no correct answer within {timeout_s:g} s of the start")
        return result["at"] - started
    finally:
        done.set()
        stack.down()
        shutil.rmtree(work, ignore_errors=True)


def measure(stacks: list[str], model: str, artifacts: Path, runs: int) -> dict[str, dict[str, Any]]:
    """Per stack: every run's seconds and their median."""
    out = {}
    for fw in stacks:
        times = []
        for i in range(runs):
            with console.status(f"cold start: {fw} run {i + 1}/{runs}"):
                times.append(round(measure_once(fw, model, artifacts), 3))
        out[fw] = {"model": model, "runs_s": times, "median_s": round(statistics.median(times), 3)}
        console.print(f"cold start {fw}: median {out[fw]['median_s']:.2f} s over {runs} runs {times}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.coldstart", description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="digits", help="the model whose first correct answer ends the clock")
    ap.add_argument("--stacks", default="torchserve,tfserving")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--out", type=Path, default=Path("results/coldstart.json"))
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    result = measure([s for s in args.stacks.split(",") if s], args.model, args.artifacts, args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    console.print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
