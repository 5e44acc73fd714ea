"""TorchServe started the way KServe's `kserve-torchserve` runtime starts it, from `make k8s-artifacts`'s layout.

The runtime (KServe v0.13.0, config/runtimes/kserve-torchserve.yaml) runs `torchserve --start
--model-store=/mnt/models/model-store --ts-config=/mnt/models/config/config.properties` with
TS_SERVICE_ENVELOPE set from the InferenceService's protocol (`kserve` for v1, `kservev2` for v2). Here: the
same files as laid out by deploy.k8s.storage, the same flags, the same variable; only the addresses move to
loopback ephemeral ports, through TS_* variables (the rendered config enables them, as KServe requires).

KServe's Python front end (pytorch/serve v0.12.0 kubernetes/kserve/kserve_wrapper on kserve 0.13.0) is not run.
Its two calls to TorchServe are reproduced exactly instead:
- readiness: GET <management_address>/models/<m>?customized=false until a worker is READY;
- prediction: kserve's Model._http_predict POSTs the client's JSON body unchanged (orjson) to
  <inference_address>/v1/models/<m>:predict (v1) or /v2/models/<m>/infer (v2, InferRequest.to_rest()),
  with Content-Type application/json and no Authorization header.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contract.ports import free_ports
from deploy.k8s.kserve import STORAGE_TS


@dataclass(frozen=True)
class KServeTorchServe:
    """A running TorchServe as KServe's runtime runs it."""

    inference_url: str
    """Where KServe's front end sends predictions (the config's inference_address, moved to loopback)."""
    log: Path
    work: Path
    """LOG_LOCATION: TorchServe's own logs, access_log.log among them."""

    def requests_to(self, path: str) -> int:
        """How many requests for `path` TorchServe's access log holds (proves who answered)."""
        access = self.work / "access_log.log"
        return access.read_text().count(f" {path} ") if access.is_file() else 0

    def v1_predict(self, model: str, body: Any) -> httpx.Response:
        """What kserve 0.13's Model._http_predict sends for protocol v1."""
        return httpx.post(
            f"{self.inference_url}/v1/models/{model}:predict",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )

    def v2_infer(self, model: str, body: Any) -> httpx.Response:
        """What kserve 0.13's Model._http_predict sends for protocol v2 (InferRequest.to_rest())."""
        return httpx.post(
            f"{self.inference_url}/v2/models/{model}/infer",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )


@contextmanager
def kserve_torchserve(storage: Path, model: str, envelope: str, work: Path) -> Iterator[KServeTorchServe]:
    """Start TorchServe on `storage`/kserve/torchserve/<model>/ with TS_SERVICE_ENVELOPE=`envelope`; stop it after."""
    root = storage / STORAGE_TS / model
    inference, metrics, grpc_inference, grpc_management = free_ports(4, "127.0.0.1")
    inference_url = f"http://127.0.0.1:{inference}"
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
    env.update(
        {
            "TS_SERVICE_ENVELOPE": envelope,
            "TS_INFERENCE_ADDRESS": inference_url,
            "TS_MANAGEMENT_ADDRESS": inference_url,  # KServe's layout: both APIs on one address
            "TS_METRICS_ADDRESS": f"http://127.0.0.1:{metrics}",
            "TS_GRPC_INFERENCE_ADDRESS": "127.0.0.1",
            "TS_GRPC_INFERENCE_PORT": str(grpc_inference),
            "TS_GRPC_MANAGEMENT_ADDRESS": "127.0.0.1",
            "TS_GRPC_MANAGEMENT_PORT": str(grpc_management),
            "LOG_LOCATION": str(work),
            "METRICS_LOCATION": str(work),
            "TEMP": str(tmp),
            "TMPDIR": str(tmp),
            "OMP_WAIT_POLICY": "PASSIVE",
        }
    )
    argv = [
        sys.executable,
        "-m",
        "ts.model_server",
        "--start",
        "--foreground",
        f"--model-store={root / 'model-store'}",
        f"--ts-config={root / 'config' / 'config.properties'}",
    ]
    log = work / "torchserve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, inference_url, model, log)
        yield KServeTorchServe(inference_url, log, work)
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, model: str, log: Path, timeout: float = 180) -> None:
    """kserve_wrapper's TorchserveModel.load(): describe the model until one of its workers is READY."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"TorchServe exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            answer = httpx.get(f"{url}/models/{model}?customized=false", timeout=5).json()
            if any(w.get("status") == "READY" for w in answer[0].get("workers", [])):
                return
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"TorchServe not ready after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process group we started (TorchServe's frontend and its Python workers)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
