"""The auth, health, shadow and breaker sections: their new names and the former `limits` names both take effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import LEGACY_LIMITS, Settings

# (old field under limits, env value, the value the settings must hold); every value differs from the default
VALUES: dict[str, tuple[str, object]] = {
    "api_keys": (json.dumps(["k1", "k2"]), ["k1", "k2"]),
    "api_key_file": ("/tmp/twinserve-keys", Path("/tmp/twinserve-keys")),
    "metrics_public": ("false", False),
    "health_interval_s": ("0.25", 0.25),
    "health_failures": ("7", 7),
    "shadow_queue_size": ("3", 3),
    "shadow_workers": ("5", 5),
    "shadow_tolerance": ("0.5", 0.5),
    "breaker_failures": ("9", 9),
    "breaker_cooldown_s": ("1.5", 1.5),
}


def _held(settings: Settings, section: str, name: str) -> object:
    value = getattr(getattr(settings, section), name)
    return [k.get_secret_value() for k in value] if name == "api_keys" else value


def test_every_former_limits_key_has_a_value_here() -> None:
    assert set(VALUES) == set(LEGACY_LIMITS)


@pytest.mark.parametrize("old", sorted(LEGACY_LIMITS))
def test_old_and_new_env_names_both_take_effect(monkeypatch: pytest.MonkeyPatch, old: str) -> None:
    section, name = LEGACY_LIMITS[old]
    raw, expected = VALUES[old]
    monkeypatch.setenv(f"TWINSERVE_LIMITS__{old.upper()}", raw)
    assert _held(Settings(routes_file=None), section, name) == expected
    monkeypatch.delenv(f"TWINSERVE_LIMITS__{old.upper()}")
    assert _held(Settings(routes_file=None), section, name) != expected  # the default, so the env var did it
    monkeypatch.setenv(f"TWINSERVE_{section.upper()}__{name.upper()}", raw)
    assert _held(Settings(routes_file=None), section, name) == expected


def test_the_new_name_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINSERVE_LIMITS__HEALTH_INTERVAL_S", "9")
    monkeypatch.setenv("TWINSERVE_HEALTH__INTERVAL_S", "0.5")
    monkeypatch.setenv("TWINSERVE_LIMITS__MAX_BODY_BYTES", "2048")  # a key that stays in limits is untouched
    settings = Settings(routes_file=None)
    assert settings.health.interval_s == 0.5 and settings.limits.max_body_bytes == 2048
    assert Settings(routes_file=None, limits={"breaker_failures": 4}).breaker.failures == 4  # init kwargs too


@pytest.mark.parametrize("env", ["TWINSERVE_LIMITS__API_KEYS", "TWINSERVE_AUTH__API_KEYS"])
def test_api_keys_by_either_name_guard_inference(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv(env, json.dumps(["sesame"]))
    app = create_app(Settings(routes_file=None, routes={"models": {}}, server={"grpc_port": None}))
    with TestClient(app) as client:
        assert client.get("/v2/models/digits").status_code == 401
        assert client.get("/v2/models/digits", headers={"Authorization": "Bearer sesame"}).status_code == 404
        assert client.get("/v2/health/live").status_code == 200
