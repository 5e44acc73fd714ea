"""Upstream HTTP clients side by side: CPU per request-and-answer, in one process, against the no-op upstream.

What the gateway's upstream client costs is the question (gateway/httpclient.py replaced aiohttp on that
evidence). Each client sends the same TF REST `:predict` body to the no-op upstream (loadtest.gatewaybench.noop,
its own process) one request at a time over one kept-alive connection, on uvloop as in the gateway; the figure is
this process's CPU time (user + system) per request, so the upstream's own work is not in it. Clients take turns
round by round; the table gives the median over rounds.

    python -m loadtest.gatewaybench.clientcpu --requests 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import uvloop

from gateway.httpclient import HTTPClient
from loadtest.gatewaybench.procs import free_port, start_noop, stop_process

PATH = "/v1/models/digits:predict"
BODY = json.dumps({"instances": [[0.0] * 64]}).encode()
HEADERS = {"X-Request-ID": "clientcpu", "Content-Type": "application/json"}

Send = Callable[[], Awaitable[int]]


async def _aiohttp(url: str, stack: list[Callable[[], Awaitable[Any]]]) -> Send:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8), timeout=aiohttp.ClientTimeout(total=None))
    stack.append(session.close)

    async def send() -> int:
        async with session.post(url, data=BODY, headers=HEADERS) as resp:
            await resp.read()
            return resp.status

    return send


async def _httpx(url: str, stack: list[Callable[[], Awaitable[Any]]]) -> Send:
    client = httpx.AsyncClient(timeout=30)
    stack.append(client.aclose)

    async def send() -> int:
        return (await client.post(url, content=BODY, headers=HEADERS)).status_code

    return send


async def _gateway(url: str, stack: list[Callable[[], Awaitable[Any]]]) -> Send:
    client = HTTPClient(8)
    stack.append(client.close)

    async def send() -> int:
        return (await client.request("POST", url, BODY, HEADERS)).status

    return send


CLIENTS = {"aiohttp": _aiohttp, "httpx": _httpx, "gateway.httpclient": _gateway}


async def measure(url: str, requests: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Per client, per round: (CPU µs per request, wall µs per request)."""
    stack: list[Callable[[], Awaitable[Any]]] = []
    sends = {name: await make(url, stack) for name, make in CLIENTS.items()}
    for send in sends.values():  # connect and warm up every client first
        for _ in range(200):
            assert await send() == 200
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in sends}
    for r in range(rounds):
        names = list(sends)[r % len(sends) :] + list(sends)[: r % len(sends)]  # rotate who goes first
        for name in names:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(requests):
                if await sends[name]() != 200:
                    raise RuntimeError(f"{name}: the no-op upstream did not answer 200")
            results[name].append(
                ((time.process_time() - cpu) / requests * 1e6, (time.perf_counter() - wall) / requests * 1e6)
            )
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    for close in stack:
        await close()
    return results


def main() -> None:
    """Start the no-op upstream, measure, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    upstream = start_noop(port)
    try:
        results = uvloop.run(measure(f"http://127.0.0.1:{port}{PATH}", args.requests, args.rounds))
    finally:
        stop_process(upstream)
    print("| client | CPU µs per request (median) | per round | wall µs per request (median) |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        cpus = " / ".join(f"{c:.1f}" for c, _ in rows)
        cpu, wall = statistics.median(c for c, _ in rows), statistics.median(w for _, w in rows)
        print(f"| {name} | {cpu:.1f} | {cpus} | {wall:.1f} |")


if __name__ == "__main__":
    main()
