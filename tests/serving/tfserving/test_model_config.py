"""The TF side's models.config lists the zoo's models and then every registered one, and the stand-in's config
parser reads what is rendered (the real server reads the same text proto)."""

from __future__ import annotations

from pathlib import Path

from models import registry
from serving.tfserving import model_config
from serving.tfserving.standin.config import load_model_configs


def register(root: Path, name: str) -> None:
    """A minimal valid user registration of `name` under `root`."""
    registration = {
        "schema": registry.SCHEMA, "name": name, "version": 1, "builtin": False, "spec": "/x/spec.py",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
        "max_batch": 8, "tolerance": {"atol": 1e-4, "rtol": 1e-3}, "slo_p99_ms": 50, "converter": "keras-port",
        "artifacts": {"mar": f"artifacts/torchserve/{name}.mar", "savedmodel": f"artifacts/tfserving/{name}"},
        "reference": f"artifacts/reference/{name}.npz", "parity": {"max_abs_diff": {}, "batches": [1, 8]},
    }  # fmt: skip
    registry.write(registry.user_path(root, name), registry.from_json(registration))


def test_registered_models_follow_the_zoo(tmp_path: Path) -> None:
    register(tmp_path, "tabular")
    register(tmp_path, "textpair")
    assert model_config.model_names(tmp_path) == ["digits", "resnet18", "tabular", "textpair"]


def test_no_registration_is_the_zoo_alone(tmp_path: Path) -> None:
    assert model_config.model_names(tmp_path) == model_config.static_names() == ["digits", "resnet18"]


def test_the_stand_in_reads_the_rendered_config(tmp_path: Path) -> None:
    register(tmp_path, "tabular")
    out = tmp_path / "run" / "models.config"
    assert model_config.write(tmp_path, out) == ["digits", "resnet18", "tabular"]
    configs = load_model_configs(out, tmp_path / "artifacts" / "tfserving")
    assert [c.name for c in configs] == ["digits", "resnet18", "tabular"]
    assert configs[-1].base_path == tmp_path / "artifacts" / "tfserving" / "tabular"
