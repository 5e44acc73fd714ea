"""Settings: YAML routes, env overrides over YAML, init over env, and validation that refuses bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings


def test_default_routes_file_is_loaded() -> None:
    settings = Settings()
    assert set(settings.routes.models) == {"digits", "resnet18"}
    assert settings.routes.models["digits"].signature is not None


def test_env_overrides_one_key_of_the_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINSERVE_ROUTES__MODELS__DIGITS__POLICY", "split")
    monkeypatch.setenv("TWINSERVE_BACKENDS__TFSERVING__PROTOCOL", "rest")
    settings = Settings()
    assert settings.routes.models["digits"].policy == "split"
    assert settings.routes.models["digits"].signature is not None  # the rest of the YAML entry survives
    assert settings.backends.tfserving.protocol == "rest"
    assert Settings(backends={"tfserving": {"protocol": "grpc"}}).backends.tfserving.protocol == "grpc"


def test_routes_file_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("models:\n  other:\n    policy: failover\n")
    monkeypatch.setenv("TWINSERVE_ROUTES_FILE", str(path))
    assert set(Settings().routes.models) == {"other"}


@pytest.mark.parametrize(
    "bad",
    [
        {"routes": {"models": {"digits": {"policy": "random"}}}},
        {"routes": {"models": {"../x": {}}}},
        {
            "routes": {"models": {"digits": {"policy": "failover"}}},
            "backends": {"tfserving": {"enabled": False}},
        },
        {"routes": {"models": {"digits": {"timeout_s": 0}}}},
        {"limits": {"unknown": 1}},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(routes_file=None, **bad)


def test_bad_routes_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("digits: {policy: pin}\n")
    with pytest.raises(ValueError, match="expected a mapping with one key 'models'"):
        Settings(routes_file=path)
