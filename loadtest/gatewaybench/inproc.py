"""The gateway app's own CPU per inference, in-process: ASGI calls with no sockets, a backend that does no work.

What the app's Python costs per request (middlewares, routing, codecs, the core), without uvicorn, the HTTP
client, the event loop's socket work or another process competing for the CPU; the least noisy figure for a
lever inside the app. CPU time is `time.process_time` over `--requests` calls, `--repeat` rounds (median, min).
`--source DIR` runs another tree's `gateway` package (e.g. `git archive main | tar -x -C DIR`).

    python -m loadtest.gatewaybench.inproc --path /v2/models/digits/infer
    python -m loadtest.gatewaybench.inproc --path '/v1/models/digits:predict' --source /tmp/main
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def body_for(path: str) -> bytes:
    """A one-row digits request in the path's protocol (v2 infer or TF predict)."""
    x = np.zeros((1, 1, 8, 8), np.float32)
    if path.endswith(":predict"):
        return json.dumps({"instances": x.tolist()}).encode()
    tensor = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x.reshape(-1).tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def zero_work_backends() -> dict[str, Any]:
    """Both backends as clients that answer digits' two outputs at once (built from the loaded gateway package)."""
    base = importlib.import_module("gateway.backends.base")
    metadata = importlib.import_module("gateway.metadata")
    settings = importlib.import_module("gateway.settings")
    tensors = importlib.import_module("gateway.tensors")
    meta = metadata.ModelMetadata(
        "digits",
        ("1",),
        "zero-work",
        (metadata.TensorMeta("input", "FP32", (-1, 1, 8, 8)),),
        (metadata.TensorMeta("logits", "FP32", (-1, 10)), metadata.TensorMeta("probabilities", "FP32", (-1, 10))),
    )
    out = np.zeros((1, 10), np.float32)

    class ZeroWork(base.Backend):  # type: ignore[name-defined,misc]
        async def start(self) -> None:
            """Nothing to open."""

        async def close(self) -> None:
            """Nothing to close."""

        async def _infer(self, model: str, version: Any, inputs: Any, timeout_s: float, request_id: str) -> Any:
            return [tensors.InferTensor.from_numpy("logits", out), tensors.InferTensor.from_numpy("probabilities", out)]

        async def metadata(self, model: str, version: Any, declared: Any) -> Any:
            return meta

        async def healthy(self, model: str) -> bool:
            return True

    backends = {}
    for name in ("torchserve", "tfserving"):
        backend = ZeroWork(settings.BackendSettings(timeout_s=5.0))
        backend.name = name
        backends[name] = backend
    return backends


async def measure(path: str, requests: int, repeat: int, warmup: int) -> list[float]:
    """µs of CPU per request for each round."""
    app_module = importlib.import_module("gateway.app")
    settings = importlib.import_module("gateway.settings")
    route = {"policy": "pin", "backend": "torchserve"}
    config = settings.Settings(routes_file=None, routes={"models": {"digits": route}}, server={"grpc_port": None})
    app = app_module.create_app(config, backends=zero_work_backends())
    body = body_for(path)
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def one() -> None:
        scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST"}
        scope |= {"scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b""}
        scope |= {"headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"{path} answered {status}")

    rounds = []
    async with app.router.lifespan_context(app):
        for _ in range(warmup):
            await one()
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(requests):
                await one()
            rounds.append((time.process_time() - t0) / requests * 1e6)
    return rounds


def main(argv: list[str] | None = None) -> int:
    """Print µs of CPU per request (median and min over the rounds) for one path."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/v2/models/digits/infer", help="an inference path of the digits model")
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds")
    parser.add_argument("--warmup", type=int, default=500, help="requests before the first round")
    parser.add_argument("--source", type=Path, help="tree whose `gateway` package runs")
    args = parser.parse_args(argv)
    if args.source is not None:
        if "gateway" in sys.modules:
            parser.error("the gateway package is already loaded; --source must come first")
        sys.path.insert(0, str(args.source.resolve()))
    rounds = asyncio.run(measure(args.path, args.requests, args.repeat, args.warmup))
    median, least = statistics.median(rounds), min(rounds)
    print(f"{args.path}: {median:.1f} us CPU/request median, {least:.1f} min, {len(rounds)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
