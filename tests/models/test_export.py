"""The exported artifacts: manifest schema and hashes, reproducible weights, samples, signatures."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models import port, registry, train
from models.manifest import SCHEMA_VERSION, read_manifest, sha256_file, sha256_tree
from models.specs import SPECS


@pytest.fixture(scope="module")
def manifest(artifacts: Path) -> dict:
    return read_manifest(artifacts / "manifest.json")


def test_manifest_schema(manifest: dict) -> None:
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert {"torch", "tensorflow", "keras", "torchserve", "torch-model-archiver", "python"} <= set(manifest["versions"])
    assert manifest["versions"]["tensorflow"] == "2.20.0"  # loads in tensorflow/serving:2.20.0
    assert set(manifest["models"]) == set(SPECS)
    for name, entry in manifest["models"].items():
        spec = SPECS[name]
        assert entry["input"] == {"name": "input", "dtype": "float32", "shape": [-1, *spec.input_shape]}
        assert [o["name"] for o in entry["outputs"]] == ["logits", "probabilities"]
        assert all(o["shape"] == [-1, spec.num_classes] for o in entry["outputs"])
        assert len(entry["weights_sha256"]) == 64
        assert entry["export_seconds"] > 0


def test_manifest_hashes_match_files_on_disk(manifest: dict, artifacts: Path) -> None:
    for entry in manifest["models"].values():
        assert sha256_file(artifacts / entry["torchserve"]["path"]) == entry["torchserve"]["sha256"]
        assert sha256_tree(artifacts / entry["tfserving"]["path"]) == entry["tfserving"]["files"]
        assert "saved_model.pb" in entry["tfserving"]["files"]
        assert "assets.extra/tf_serving_warmup_requests" in entry["tfserving"]["files"]


def test_digits_accuracy_reported_and_above_bar(manifest: dict) -> None:
    assert manifest["models"]["digits"]["heldout_accuracy"] >= 0.95
    assert manifest["models"]["digits"]["heldout_samples"] >= 256


def test_reexport_reproduces_the_weight_hashes(manifest: dict) -> None:
    digits, _ = train.train_digits()
    assert port.canonical_digest(digits) == manifest["models"]["digits"]["weights_sha256"]
    resnet = train.seed_resnet18()
    assert port.canonical_digest(resnet) == manifest["models"]["resnet18"]["weights_sha256"]


def test_mar_holds_handler_source_weights_and_batching_config(artifacts: Path) -> None:
    with zipfile.ZipFile(artifacts / "torchserve" / "digits.mar") as archive:
        names = set(archive.namelist())
        assert {"handler.py", "torch_nets.py", "weights.pt", "model_meta.json", "MAR-INF/MANIFEST.json"} <= names
        mar_manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        config = archive.read(mar_manifest["model"]["configFile"]).decode()
    assert "batchSize" in config and "maxBatchDelay" in config and "Workers" in config
    assert mar_manifest["model"]["modelName"] == "digits"


def test_samples_carry_reference_outputs(artifacts: Path) -> None:
    for name, spec in SPECS.items():
        samples = np.load(artifacts / "samples" / f"{name}.npz")
        assert samples["inputs"].shape[1:] == spec.input_shape
        assert samples["inputs"].dtype == np.float32
        assert samples["logits"].shape == (len(samples["inputs"]), spec.num_classes)
        np.testing.assert_allclose(samples["probabilities"].sum(1), 1.0, atol=1e-5)
        body = json.loads((artifacts / "samples" / f"{name}.json").read_text())
        assert np.asarray(body["instances"], dtype=np.float32).shape == (1, *spec.input_shape)
    digits = np.load(artifacts / "samples" / "digits.npz")
    assert np.mean(digits["logits"].argmax(1) == digits["labels"]) >= 0.95


def test_savedmodel_loads_with_tensorflow_and_has_the_public_signature(artifacts: Path) -> None:
    import tensorflow as tf

    for name, spec in SPECS.items():
        loaded = tf.saved_model.load(str(artifacts / "tfserving" / name / str(spec.version)))
        signature = loaded.signatures["serving_default"]
        (args, kwargs) = signature.structured_input_signature
        assert not args and list(kwargs) == ["input"]
        assert kwargs["input"].shape.as_list() == [None, *spec.input_shape]
        assert kwargs["input"].dtype == tf.float32
        assert sorted(signature.structured_outputs) == ["logits", "probabilities"]


def test_builtin_registrations_are_generated_by_export(artifacts: Path) -> None:
    models = registry.load_all(artifacts.parent)
    for name, spec in SPECS.items():
        model = models[name]
        assert model.builtin and model.source.endswith(f"artifacts/registry/{name}.json")
        assert [(t.name, t.datatype, t.shape) for t in model.inputs] == [("input", "FP32", (-1, *spec.input_shape))]
        assert [t.name for t in model.outputs] == ["logits", "probabilities"]
        assert all(d <= 1e-4 for d in model.parity.max_abs_diff.values()), model.parity
        with np.load(artifacts.parent / model.reference) as ref:
            assert ref["b8/in/input"].shape == (8, *spec.input_shape)
            assert ref["b1/out/logits"].shape == (1, spec.num_classes)


def test_a_builtin_spec_goes_through_add_models_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # textclf is exported only where the generic handler exists (issue 13's serving side); stand one in.
    from rich.progress import Progress

    from models import export, specartifacts

    monkeypatch.setattr(specartifacts, "GENERIC_HANDLER", specartifacts.HANDLER)
    with Progress(disable=True) as bar:
        export.export_spec_builtin("textclf", tmp_path, bar)
    model = registry.read(tmp_path / "registry" / "textclf.json")
    assert model.builtin and model.converter == "keras-port"
    assert [t.name for t in model.inputs] == ["input_ids", "attention_mask"]
    assert (tmp_path / "torchserve" / "textclf.mar").is_file()
    assert (tmp_path / "tfserving" / "textclf" / "1" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "registry" / "export" / "textclf.json").read_text())["converter"] == "keras-port"
