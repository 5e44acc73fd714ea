"""models/registry.py: the registration JSON round-trips, bad files are named with their field, lookup order."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from models import registry
from models.registry import RegistryError

GOOD: dict[str, Any] = {
    "schema": "twinserve.model/1",
    "name": "textclf",
    "version": 1,
    "builtin": False,
    "spec": "/abs/path/to/spec.py",
    "description": "one line",
    "inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": [-1, 32]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [-1, 32]},
    ],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
    "max_batch": 32,
    "tolerance": {"atol": 1e-4, "rtol": 1e-3},
    "slo_p99_ms": 100,
    "converter": "keras-port",
    "layout_note": "inputs keep the torch layout on both stacks",
    "artifacts": {"mar": "artifacts/torchserve/textclf.mar", "savedmodel": "artifacts/tfserving/textclf"},
    "reference": "artifacts/reference/textclf.npz",
    "parity": {"max_abs_diff": {"logits": 3.1e-7}, "batches": [1, 8]},
}


def _with(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(GOOD)
    obj.update(changes)
    return obj


def test_round_trip(tmp_path: Path) -> None:
    model = registry.from_json(GOOD)
    assert model.input("attention_mask").numpy_dtype == "int64"
    assert model.outputs[0].shape == (-1, 2)
    path = registry.user_path(tmp_path, "textclf")
    registry.write(path, model)
    again = registry.read(path)
    assert again.to_json() == model.to_json()
    assert json.loads(path.read_text()) == {**GOOD, "slo_p99_ms": 100.0}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema": "twinserve.model/2"}, "schema 'twinserve.model/2' is not"),
        ({"name": "Bad Name"}, "model name 'Bad Name' is not allowed"),
        ({"version": 0}, "version must be >= 1"),
        ({"builtin": "no"}, "field 'builtin' must be bool"),
        ({"max_batch": True}, "field 'max_batch' must be int, not a boolean"),
        ({"inputs": []}, "inputs: must be a non-empty list"),
        ({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [-1]}]}, "datatype 'FLOAT' is not one of"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4, 3]}]}, "must start with -1"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 0]}]}, "positive ints or -1"),
        ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}] * 2}, "duplicate tensor names ['y']"),
        ({"converter": "magic"}, "converter 'magic' is not one of"),
        ({"tolerance": {"atol": 1e-4}}, "missing field 'rtol'"),
        ({"parity": {"max_abs_diff": {"nope": 1.0}, "batches": [1]}}, "parity names outputs ['nope']"),
    ],
)
def test_bad_registrations_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        registry.from_json(_with(**changes), source="x/model.json")
    assert message in str(caught.value)
    assert "x/model.json" in str(caught.value) or "name" in message


def test_missing_field_is_named() -> None:
    obj = copy.deepcopy(GOOD)
    del obj["reference"]
    with pytest.raises(RegistryError, match=r"missing field 'reference'"):
        registry.from_json(obj)


def test_load_all_reads_builtins_then_user_models(tmp_path: Path) -> None:
    registry.write(registry.builtin_path(tmp_path, "digits"), registry.from_json(_with(name="digits", builtin=True)))
    registry.write(registry.user_path(tmp_path, "textclf"), registry.from_json(GOOD))
    models = registry.load_all(tmp_path)
    assert list(models) == ["digits", "textclf"]
    assert models["digits"].builtin
    assert registry.get("textclf", tmp_path).source.endswith("models.d/textclf/model.json")
    with pytest.raises(RegistryError, match=r"no registered model 'nope'; registered: digits, textclf"):
        registry.get("nope", tmp_path)
    assert registry.load_all(tmp_path / "empty") == {}


def test_load_all_refuses_a_user_model_shadowing_a_builtin(tmp_path: Path) -> None:
    registry.write(registry.builtin_path(tmp_path, "digits"), registry.from_json(_with(name="digits", builtin=True)))
    path = registry.user_path(tmp_path, "digits")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_with(name="digits")))
    with pytest.raises(RegistryError, match=r"model 'digits' collides with .*artifacts/registry/digits.json"):
        registry.load_all(tmp_path)


def test_load_all_refuses_a_folder_name_mismatch(tmp_path: Path) -> None:
    path = registry.user_path(tmp_path, "other")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(GOOD))
    with pytest.raises(RegistryError, match=r"names model 'textclf' but its folder is 'other'"):
        registry.load_all(tmp_path)


def test_invalid_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("{")
    with pytest.raises(RegistryError, match=r"model.json: not valid JSON"):
        registry.read(path)


def test_registry_imports_no_framework() -> None:
    # The gateway and loadtest import it; pulling torch/tensorflow/numpy in would break that rule.
    code = "import sys, models.registry; print(sorted(m for m in ('torch','tensorflow','numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
