"""A no-op upstream for gateway benchmarks: answers like TorchServe (our handler) and TF Serving, instantly.

`POST /predictions/<m>[/<v>]` -> columnar `{"outputs": {"logits": ..., "probabilities": ...}}` with one row per
input row (raw float32 bodies: rows = bytes / (4 * 64) for digits); `POST /v1/models/<m>[...]:predict` -> the same
`outputs`; `GET /ping` -> Healthy. The answer is fixed, so the gateway's cost is all that is measured.

    python -m loadtest.gatewaybench.noop --port 18080
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

ROW_FLOATS = 64  # digits: [1, 8, 8]
LOGITS = [0.1 * i for i in range(10)]


def answer(rows: int) -> bytes:
    """Columnar outputs for `rows` rows."""
    return json.dumps({"outputs": {"logits": [LOGITS] * rows, "probabilities": [[0.1] * 10] * rows}}).encode()


async def predictions(request: web.Request) -> web.Response:
    """One fixed answer with as many rows as the request has."""
    body = await request.read()
    if request.content_type == "application/octet-stream":
        rows = max(1, len(body) // (4 * ROW_FLOATS))
    else:
        payload = json.loads(body or b"{}")
        inputs = payload.get("inputs", payload.get("instances", [[0]]))
        rows = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
    return web.Response(body=answer(rows), content_type="application/json")


async def ping(request: web.Request) -> web.Response:
    """TorchServe's health answer."""
    return web.json_response({"status": "Healthy"})


def make_app() -> web.Application:
    """The aiohttp app."""
    app = web.Application()
    app.router.add_post("/predictions/{model}", predictions)
    app.router.add_post("/predictions/{model}/{version}", predictions)
    app.router.add_post(r"/v1/models/{tail:.+}", predictions)
    app.router.add_get("/ping", ping)
    return app


def main() -> None:
    """Serve on loopback until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
