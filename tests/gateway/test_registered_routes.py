"""Registered models become gateway routes (TWINSERVE_REGISTRY_ROOT): pinned to TorchServe with their registered
signature, beside routes.yaml's models; a route in the routes file wins over the registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from gateway.settings import Settings
from models import registry

REGISTRATION = {
    "schema": registry.SCHEMA, "name": "textpair", "version": 3, "builtin": False, "spec": "/x/spec.py",
    "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [-1, 8]},
               {"name": "mask", "datatype": "BOOL", "shape": [-1, 8]}],
    "outputs": [{"name": "logits", "datatype": "FP16", "shape": [-1, 2]}],
    "max_batch": 8, "tolerance": {"atol": 1e-3, "rtol": 1e-3}, "slo_p99_ms": 50, "converter": "keras-port",
    "artifacts": {"mar": "artifacts/torchserve/textpair.mar", "savedmodel": "artifacts/tfserving/textpair"},
    "reference": "artifacts/reference/textpair.npz", "parity": {"max_abs_diff": {}, "batches": [1, 8]},
}  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = registry.user_path(tmp_path, "textpair")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(REGISTRATION))
    return tmp_path


def test_registered_model_is_routed_with_its_signature(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINSERVE_REGISTRY_ROOT", str(root))
    routes = Settings().routes.models
    assert {"digits", "resnet18", "textpair"} <= set(routes)  # routes.yaml's models stay
    route = routes["textpair"]
    assert (route.policy, route.backend, route.versions) == ("pin", "torchserve", ["3"])
    assert route.signature is not None
    assert [(t.name, t.datatype, t.shape) for t in route.signature.inputs] == [
        ("input_ids", "INT64", [-1, 8]),
        ("mask", "BOOL", [-1, 8]),
    ]
    assert [(t.name, t.datatype) for t in route.signature.outputs] == [("logits", "FP16")]


def test_without_a_registry_root_no_registered_model_is_routed(root: Path) -> None:
    assert "textpair" not in Settings().routes.models


def test_the_routes_file_wins_over_a_registration(root: Path, tmp_path: Path) -> None:
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(yaml.safe_dump({"models": {"textpair": {"policy": "split", "versions": ["3"]}}}))
    route = Settings(registry_root=root, routes_file=routes_file).routes.models["textpair"]
    assert route.policy == "split" and route.signature is None


def test_a_broken_registration_names_its_file(root: Path) -> None:
    path = registry.user_path(root, "textpair")
    path.write_text(json.dumps({**REGISTRATION, "max_batch": 0}))
    with pytest.raises(ValueError, match=r"textpair/model.json.*max_batch"):
        Settings(registry_root=root)
