"""Secure by default beyond loopback: a gateway reachable from the network without API keys refuses to start
(unless TWINSERVE_SERVER__ALLOW_UNAUTHENTICATED says so), and its /metrics then needs the key too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from contract.ports import free_ports
from gateway.app import create_app
from gateway.exposure import ALLOW_ENV, is_loopback, metrics_public, refusal
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {"routes_file": None, "routes": {"models": {}}}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.20", False),
        ("gateway.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refusal_rule() -> None:
    def settings(**server: Any) -> Settings:
        return Settings(**BASE, server=server)

    assert refusal(settings()) is None  # the default listens on loopback
    message = refusal(settings(host="0.0.0.0"))
    assert message is not None and ALLOW_ENV in message and "TWINSERVE_LIMITS__API_KEYS" in message
    assert refusal(settings(host="127.0.0.1", published_host="0.0.0.0")) is not None  # a container published widely
    assert refusal(settings(host="0.0.0.0", published_host="127.0.0.1")) is None  # a container published on loopback
    assert refusal(settings(host="0.0.0.0", allow_unauthenticated=True)) is None
    assert refusal(Settings(**BASE, server={"host": "0.0.0.0"}, limits={"api_keys": ["k"]})) is None


def _gateway(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    rest, grpc_port = free_ports(2)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWINSERVE_")}
    full = {**clean, "TWINSERVE_ROUTES_FILE": "none", **env}
    argv = [sys.executable, "-m", "gateway", "--port", str(rest), "--grpc-port", str(grpc_port)]
    # it must exit before it listens; a gateway that starts instead is cut off here and the test fails
    return subprocess.run(argv, cwd=REPO, env=full, capture_output=True, text=True, timeout=60, check=False)


def test_python_m_gateway_refuses_a_wildcard_bind_without_keys() -> None:
    try:
        done = _gateway({"TWINSERVE_SERVER__HOST": "0.0.0.0"})
    except subprocess.TimeoutExpired:
        pytest.fail("the gateway started on 0.0.0.0 without API keys")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to serve on '0.0.0.0' without API keys" in done.stderr
    assert ALLOW_ENV in done.stderr


def test_metrics_need_the_key_beyond_loopback() -> None:
    keyed = {"api_keys": ["k"]}
    wide = Settings(**BASE, server={"published_host": "0.0.0.0", "grpc_port": None}, limits=keyed)
    local = Settings(**BASE, server={"grpc_port": None}, limits=keyed)
    explicit = Settings(
        **BASE, server={"published_host": "0.0.0.0", "grpc_port": None}, limits={**keyed, "metrics_public": True}
    )
    assert (metrics_public(wide), metrics_public(local), metrics_public(explicit)) == (False, True, True)
    with TestClient(create_app(wide, backends={})) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200
        assert client.get("/v2/health/ready").status_code in (200, 503)  # health stays open for balancers
    for settings in (local, explicit):
        with TestClient(create_app(settings, backends={})) as client:
            assert client.get("/metrics").status_code == 200


@pytest.mark.e2e
def test_keyed_gateway_published_widely_serves_and_guards_metrics(native_stack: Any) -> None:
    from reliability.procs import GatewayProcess

    env = {"TWINSERVE_SERVER__PUBLISHED_HOST": "0.0.0.0", "TWINSERVE_LIMITS__API_KEYS": json.dumps(["wide-key"])}
    gw = GatewayProcess(native_stack.stack, env).start()
    try:
        assert requests.get(gw.url + "/metrics", timeout=10).status_code == 401
        auth = {"Authorization": "Bearer wide-key"}
        assert requests.get(gw.url + "/metrics", headers=auth, timeout=10).status_code == 200
        assert requests.get(gw.url + "/v2/models/digits", headers=auth, timeout=10).status_code == 200
    finally:
        gw.stop()


@pytest.mark.e2e
def test_the_allow_setting_lets_it_start_without_keys(native_stack: Any) -> None:
    from reliability.procs import GatewayProcess

    env = {"TWINSERVE_SERVER__PUBLISHED_HOST": "0.0.0.0", ALLOW_ENV: "true"}
    gw = GatewayProcess(native_stack.stack, env).start()
    try:
        assert requests.get(gw.url + "/v2/models/digits", timeout=10).status_code == 200
    finally:
        gw.stop()
