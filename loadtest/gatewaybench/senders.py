"""One request of each path the gateway benchmark times, as a coroutine that checks its answer.

Every sender returns a `loadtest.drive.Result`: 'ok' or 'wrong' when a reference answer is known, 'unchecked'
against the no-op upstream (its answer is fixed), and `done` taken before the check (the check is the
generator's cost, not the server's). A non-200 answer raises, which the driver counts as an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np

from contract import v2
from contract._generated import twinserve_kserve_pb2 as kserve
from contract._generated import twinserve_torchserve_pb2 as ts_pb2
from loadtest.adrive import ASend
from loadtest.drive import Result
from loadtest.users.codecs import parse_server_timing

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-3
"""Largest absolute difference from the reference logits that still counts as the right answer."""
Key = Callable[[], str | None]


def sample(artifacts: Path = REPO / "artifacts") -> tuple[np.ndarray, np.ndarray | None]:
    """One digits input row and its reference logits (zeros and None without artifacts)."""
    path = artifacts / "samples" / "digits.npz"
    if not path.is_file():
        return np.zeros((1, 1, 8, 8), np.float32), None
    with np.load(path) as data:
        return data["inputs"][:1].astype(np.float32), data["logits"][:1]


def v1_body(x: np.ndarray) -> bytes:
    """TF Serving's row-form predict body for digits (`instances`: one row per input)."""
    return json.dumps({"instances": x.tolist()}).encode()


def _judged(got: Any, want: np.ndarray | None, done: float, timings: dict[str, float] | None = None) -> Result:
    if want is None:
        return Result("unchecked", done, timings)
    ok = np.allclose(np.asarray(got, np.float32).reshape(want.shape), want, atol=TOLERANCE)
    return Result("ok" if ok else "wrong", done, timings)


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[bytes, float, dict[str, float]]:
    """POST; the answer, when it had fully arrived, and the durations the server reported (`Server-Timing`)."""
    async with session.post(url, data=body, headers=headers) as r:
        raw = await r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {raw[:200]!r}")
        timing = r.headers.get("Server-Timing")
    return raw, time.perf_counter(), parse_server_timing(timing) if timing else {}


def v2_rest(session: aiohttp.ClientSession, url: str, body: bytes, backend: str, want: np.ndarray | None) -> ASend:
    """POST a v2 JSON infer to the gateway at `url` (.../v2/models/digits/infer), pinned to `backend`."""
    headers = {"Content-Type": "application/json", "X-Backend": backend}

    async def send() -> Result:
        raw, done, timings = await _post(session, url, body, headers)
        out = next(o for o in json.loads(raw)["outputs"] if o["name"] == "logits")
        return _judged(out["data"], want, done, timings)

    return send


def v1_rest(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    want: np.ndarray | None,
    headers: dict[str, str] | None = None,
) -> ASend:
    """POST TF Serving's row-form predict (`{"instances": ...}`) to `url` (.../v1/models/digits:predict)."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}

    async def send() -> Result:
        raw, done, timings = await _post(session, url, body, hdrs)
        answer = json.loads(raw)
        got = answer["predictions"][0]["logits"] if "predictions" in answer else answer["outputs"]["logits"]
        return _judged(got, want, done, timings)

    return send


def ts_rest(session: Any, url: str, x: np.ndarray, key: Key, want: np.ndarray | None) -> ASend:
    """Raw float32 straight to TorchServe's `/predictions/digits` at `url` (or the no-op upstream, or a proxy of
    either); `session` is an aiohttp.ClientSession or an httpx.AsyncClient (the client comparison)."""
    payload, target = x.astype("<f4").tobytes(), f"{url}/predictions/digits"

    async def send() -> Result:
        headers = {"Content-Type": "application/octet-stream"}
        if token := key():
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(session, aiohttp.ClientSession):
            raw, done, _ = await _post(session, target, payload, headers)
        else:
            r = await session.post(target, content=payload, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}")
            raw, done = r.content, time.perf_counter()
        return _judged(json.loads(raw)["outputs"]["logits"], want, done)

    return send


def v2_grpc(channel: grpc.aio.Channel, x: np.ndarray, backend: str, want: np.ndarray | None) -> ASend:
    """ModelInfer on the gateway's gRPC port, pinned to `backend` with the `backend` metadata key."""
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=kserve.ModelInferRequest.SerializeToString,
        response_deserializer=kserve.ModelInferResponse.FromString,
    )
    request, metadata = v2.model_infer_request("digits", {"input": x.astype(np.float32)}), (("backend", backend),)

    async def send() -> Result:
        reply = await call(request, metadata=metadata, timeout=30)
        done = time.perf_counter()
        i = [o.name for o in reply.outputs].index("logits")
        return _judged(np.frombuffer(reply.raw_output_contents[i], "<f4"), want, done)

    return send


def ts_grpc(channel: grpc.aio.Channel, x: np.ndarray, key: Key, want: np.ndarray | None) -> ASend:
    """TorchServe's own gRPC `Predictions`, raw float32 in, with the inference token."""
    call = channel.unary_unary(
        "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
        request_serializer=ts_pb2.PredictionsRequest.SerializeToString,
        response_deserializer=ts_pb2.PredictionResponse.FromString,
    )
    request = ts_pb2.PredictionsRequest(model_name="digits", input={"input": x.astype("<f4").tobytes()})

    async def send() -> Result:
        token = key()
        reply = await call(request, metadata=(("authorization", f"Bearer {token}"),) if token else (), timeout=30)
        done = time.perf_counter()
        return _judged(json.loads(reply.prediction)["outputs"]["logits"], want, done)

    return send
