"""What must never be reachable or visible: the backends' management APIs and the filesystem through the
gateway, TorchServe without its token, keys in files others can read, tokens in logs, errors or metrics."""

from __future__ import annotations

import re
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from security_support import INGRESS_KEY

from gateway.app import create_app
from gateway.settings import Settings

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {INGRESS_KEY}"}
PROBES = [
    ("GET", "/models"),
    ("POST", "/models?url=digits.mar"),
    ("GET", "/models/digits"),
    ("DELETE", "/models/digits"),
    ("PUT", "/models/digits?min_worker=5"),
    ("POST", "/token?type=inference"),
    ("GET", "/api-description"),
    ("OPTIONS", "/"),
    ("GET", "/ping"),
    ("POST", "/predictions/digits"),
    ("GET", "/metrics/../models"),
    ("GET", "/v1/models/digits"),
    ("GET", "/v1/models/digits/versions/1"),
    ("GET", "/v1/models/digits/versions/1/metadata"),
    ("POST", "/v1/models/digits/versions/1:reload"),
    ("GET", "/monitoring/prometheus/metrics"),
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/digits/load"),
    ("POST", "/v2/repository/models/digits/unload"),
    ("POST", "/v2/models/..%2F..%2Fetc%2Fpasswd/infer"),
    ("POST", "/v2/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/infer"),
    ("GET", "/v2/models/..%2F..%2Fetc%2Fpasswd"),
    ("GET", "/v2/models/digits/versions/..%2F..%2F..%2Fetc%2Fpasswd"),
    ("POST", "/v2/models/digits/versions/1%2F..%2F..%2Fmodels/infer"),
    ("GET", "/static/../../etc/passwd"),
    ("GET", "/v2/models/%00/infer"),
    ("GET", "/docs"),
]


@pytest.mark.parametrize(("method", "path"), PROBES, ids=[f"{m} {p}" for m, p in PROBES])
def test_management_and_files_unreachable(keyed_gateway: Any, method: str, path: str) -> None:
    reply = requests.request(method, keyed_gateway.url + path, headers=AUTH, data=b"{}", timeout=10)
    assert reply.status_code in (400, 404, 405), f"{method} {path}: {reply.status_code} {reply.text[:200]}"
    assert "root:" not in reply.text and "inference" not in reply.text.lower().replace("inference-header", "")


@pytest.mark.parametrize(
    "raw_path", ["/../../../../etc/passwd", "/v2/models/../../../etc/passwd/infer", "//etc/passwd"]
)
def test_raw_traversal_paths(keyed_gateway: Any, raw_path: str) -> None:
    port = int(keyed_gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGRESS_KEY}\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert re.match(rb"HTTP/1.1 (400|404|405)", answer), answer[:200]
    assert b"root:" not in answer


def test_no_route_serves_files() -> None:
    app = create_app(Settings(routes_file=None, routes={"models": {}}), backends={})
    from starlette.routing import Mount

    assert not any(isinstance(route, Mount) for route in app.routes), "a mounted app could serve files"
    paths = {getattr(route, "path", "") for route in app.router.routes}
    assert not any(p.startswith(("/static", "/files")) or "{path:path}" in p for p in paths), paths


def test_torchserve_token_auth_on(native_stack: Any) -> None:
    run_dir = Path(native_stack.run_dir)
    configs = list(run_dir.rglob("config.properties"))
    assert configs, "generated TorchServe config not found"
    for cfg in configs:
        props = dict(
            line.split("=", 1) for line in cfg.read_text().splitlines() if "=" in line and not line.startswith("#")
        )
        assert props.get("disable_token_authorization", "false").strip().lower() == "false", cfg
    source = (REPO / "serving" / "torchserve" / "config.properties").read_text()
    assert re.search(r"^disable_token_authorization=false$", source, re.M)
    for compose in REPO.glob("docker-compose*.yml"):
        text = compose.read_text()
        assert "TS_DISABLE_TOKEN_AUTHORIZATION" not in text, compose
        assert "disable_token_authorization=true" not in text.replace(" ", "").lower(), compose
    ports = native_stack.ports
    base = f"http://127.0.0.1:{ports.ts_inference}"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        reply = requests.post(
            base + "/predictions/digits", json={"instances": [[[[0.5] * 8] * 8]]}, headers=headers, timeout=10
        )
        assert reply.status_code in (400, 401, 403), reply.status_code
    mgmt = requests.get(f"http://127.0.0.1:{ports.ts_management}/models", timeout=10)
    assert mgmt.status_code in (400, 401, 403, 404, 405), mgmt.status_code


def test_key_file_is_private(native_stack: Any) -> None:
    key_file = Path(native_stack.run_dir) / "torchserve" / "key_file.json"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, oct(key_file.stat().st_mode)


def test_tokens_never_in_logs_errors_or_metrics(native_stack: Any, keyed_gateway: Any) -> None:
    """After a session of good and failing requests, no secret appears in any log, error body or metric."""
    body = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}
    answers = []
    for headers in (AUTH, {"Authorization": "Bearer wrong-key"}, {}, {**AUTH, "X-Backend": "torchserve"}):
        answers.append(
            requests.post(keyed_gateway.url + "/v2/models/digits/infer", json=body, headers=headers, timeout=10)
        )
        answers.append(
            requests.post(keyed_gateway.url + "/v2/models/digits/infer", data=b"{", headers=headers, timeout=10)
        )
        answers.append(
            requests.post(keyed_gateway.url + "/v2/models/nope/infer", json=body, headers=headers, timeout=10)
        )
    assert any(a.status_code == 200 for a in answers)
    ts_keys = native_stack.stack.layout.run_dir / "torchserve" / "key_file.json"
    import json

    secrets = [v["key"] for v in json.loads(ts_keys.read_text()).values()] + [INGRESS_KEY]
    assert all(len(s) >= 8 for s in secrets)
    texts = {"metrics": requests.get(keyed_gateway.url + "/metrics", timeout=10).text}
    texts.update({f"answer {i}": a.text + str(dict(a.headers)) for i, a in enumerate(answers)})
    logs = [*Path(native_stack.run_dir).glob("logs/*.log"), keyed_gateway.log_path]
    logs += list((Path(native_stack.run_dir) / "torchserve").rglob("*.log"))
    assert keyed_gateway.log_path.stat().st_size > 0
    for path in logs:
        texts[str(path)] = path.read_text(errors="replace")
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
