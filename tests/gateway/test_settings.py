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


KSERVE_TS = {"protocol": "kserve-v1", "rest_url": "http://digits-predictor.twinserve-torchserve.svc.cluster.local/"}


def test_model_endpoints_from_yaml_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "models:\n  digits:\n    endpoints:\n"
        f"      torchserve: {{protocol: kserve-v1, rest_url: '{KSERVE_TS['rest_url']}'}}\n"
        "      tfserving: {protocol: rest, rest_url: 'http://digits-predictor.twinserve-tfserving.svc.cluster.local'}\n"
    )
    monkeypatch.setenv("TWINSERVE_ROUTES_FILE", str(path))
    monkeypatch.setenv("TWINSERVE_ROUTES__MODELS__DIGITS__ENDPOINTS__TFSERVING__GRPC_TARGET", "tf.example:9000")
    endpoints = Settings().routes.models["digits"].endpoints
    assert endpoints["torchserve"].protocol == "kserve-v1"
    assert endpoints["torchserve"].rest_url == KSERVE_TS["rest_url"].rstrip("/")  # one form: no trailing slash
    assert endpoints["tfserving"].grpc_target == "tf.example:9000"
    assert endpoints["tfserving"].rest_url == "http://digits-predictor.twinserve-tfserving.svc.cluster.local"


@pytest.mark.parametrize(
    ("endpoints", "extra", "named"),
    [
        ({"tfserving": {"protocol": "kserve-v1"}}, {}, "kserve-v1 is for TorchServe"),
        ({"torchserve": KSERVE_TS}, {"versions": ["1", "2"]}, "serves one version"),
        ({"torchserve": {"rest_url": "digits-predictor:80"}}, {}, "http:// or https://"),
        ({"torchserve": {"rest_url": "http://host/x?y=1"}}, {}, "without query"),
        ({"torchserve": {"grpc_target": "http://host:7070"}}, {}, "host:port"),
        ({"torchserve": {}}, {}, "needs protocol, rest_url or grpc_target"),
        ({"torchserve": {"protocol": "v2"}}, {}, "protocol"),
        ({"torchserve": {"url": "http://x"}}, {}, "Extra inputs are not permitted"),
        ({"gateway": {"rest_url": "http://x"}}, {}, "torchserve"),
    ],
)
def test_bad_model_endpoints_are_refused(endpoints: dict[str, object], extra: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(routes_file=None, routes={"models": {"digits": {"endpoints": endpoints, **extra}}})


def test_endpoint_of_a_disabled_backend_is_refused() -> None:
    route = {"backend": "torchserve", "endpoints": {"tfserving": {"rest_url": "http://tf:8080"}}}
    with pytest.raises(ValidationError, match="endpoint for backend 'tfserving', which is disabled"):
        Settings(routes_file=None, routes={"models": {"digits": route}}, backends={"tfserving": {"enabled": False}})
