"""How often the gateway's garbage collector runs under load, and for how long: a measurement aid.

Starts `python -m gateway` in front of the stack `make up` recorded in run/ (TF side over REST, as the gateway
benchmark does) with gcprobe/ on PYTHONPATH, so its sitecustomize records every collection; sends v2 infers
pinned to the TF side with hey (100 req/s: 4 connections x 25 req/s, for --seconds), stops the gateway and prints
the collections per generation before the gateway was ready and while the load ran.

    PYTHONPATH=. python docs/gateway-levers/gcprobe.py --seconds 20
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from contract import gateway_env
from contract.state import load
from loadtest.gatewaybench import procs
from supervisor.layout import Layout

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    state = load(Path("run/state.json"))
    assert state is not None, "run `make up STACK=native` first"
    layout = Layout(Path("run"), Path(state.artifacts), state.host, state.ports)
    out = "/tmp/gcprobe"
    for old in glob.glob(out + ".*"):
        os.remove(old)
    os.environ["PYTHONPATH"] = f"{HERE / 'gcprobe'}:{os.getcwd()}"  # the gateway's environment starts from ours
    os.environ["GCPROBE_OUT"] = out
    env = gateway_env.to_env({"backends": {"tfserving": {"protocol": "rest"}, "torchserve": {"protocol": "grpc"}}})
    proc, url, _ = procs.start_gateway(layout, env)
    ready = time.time()
    sample = Path("run/samples/digits_v2.json")
    hey = ["hey", "-z", f"{args.seconds}s", "-c", "4", "-q", "25", "-m", "POST", "-T", "application/json"]
    hey += ["-H", "X-Backend: tfserving", "-D", str(sample), url + "/v2/models/digits/infer"]
    try:
        report = subprocess.run(hey, capture_output=True, text=True, check=True).stdout
    finally:
        loaded = time.time()
        procs.stop_process(proc)
    print("\n".join(line for line in report.splitlines() if "responses" in line or "Requests/sec" in line))
    for path in glob.glob(out + ".*"):
        rows = json.loads(Path(path).read_text())["collections"]
        for label, keep in (("start-up", lambda t: t < ready), ("under load", lambda t: ready <= t <= loaded)):
            for gen in (0, 1, 2):
                took = [us for t, g, us, _ in rows if g == gen and keep(t)]
                median = f", median {statistics.median(took):.0f} µs, max {max(took):.0f} µs" if took else ""
                print(f"{label:>10} gen{gen}: {len(took)} collections{median}")


if __name__ == "__main__":
    main()
