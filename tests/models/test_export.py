"""The exported artifacts: manifest schema and hashes, reproducible weights, samples, signatures; every built-in
(digits, resnet18, textclf) is a spec file in models/zoo/ exported through add-model's path."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models import modelspec, port, registry
from models.manifest import SCHEMA_VERSION, read_manifest, sha256_file, sha256_tree
from models.specs import SPECS

REPO = Path(__file__).resolve().parents[2]


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
    for name in ("digits", "resnet18"):
        spec = modelspec.load(REPO / "models" / "zoo" / f"{name}.py")
        model = spec.build()
        assert port.canonical_digest(model) == manifest["models"][name]["weights_sha256"], name
        assert spec.build() is model  # cached: make export trains digits once though it reads build() twice


@pytest.mark.parametrize("name", ["digits", "resnet18"])
def test_mar_is_the_spec_format_with_the_zoo_batching_config(artifacts: Path, name: str) -> None:
    with zipfile.ZipFile(artifacts / "torchserve" / f"{name}.mar") as archive:
        names = set(archive.namelist())
        assert {"spec.py", "weights.pt", "signature.json", "twinserve_model.py", "generic_handler.py"} <= names
        assert not names & {"handler.py", "torch_nets.py", "model_meta.json"}  # the zoo handler's format is gone
        mar_manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        config = archive.read(mar_manifest["model"]["configFile"]).decode()
        spec = archive.read("spec.py").decode()
        signature = json.loads(archive.read("signature.json"))
    assert mar_manifest["model"]["handler"] == "generic_handler.py"
    assert (mar_manifest["model"]["modelName"], mar_manifest["model"]["modelVersion"]) == (name, "1.0")
    # the batching settings deploy/ and loadtest/knobs.py read are the ones TorchServe gets
    assert config == (REPO / "serving" / "torchserve" / "model-config" / f"{name}.yaml").read_text()
    assert spec == (REPO / "models" / "zoo" / f"{name}.py").read_text()
    assert [t["name"] for t in signature["inputs"]] == ["input"]
    assert [t["name"] for t in signature["outputs"]] == ["logits", "probabilities"]


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
        # exported from its spec file by add-model's path, TF side by the weight port into build_keras()
        assert (model.spec, model.converter) == (f"models/zoo/{name}.py", "keras-port")
        assert model.parity.batches == (1, 8) and model.max_batch == 32
        facts = json.loads((artifacts / "registry" / "export" / f"{name}.json").read_text())
        assert facts["max_abs_diff"] == model.parity.max_abs_diff
        assert [(t.name, t.datatype, t.shape) for t in model.inputs] == [("input", "FP32", (-1, *spec.input_shape))]
        assert [(t.name, t.shape) for t in model.outputs] == [
            ("logits", (-1, spec.num_classes)),
            ("probabilities", (-1, spec.num_classes)),
        ]
        assert (model.version, model.description) == (spec.version, spec.description)
        assert all(d <= 1e-4 for d in model.parity.max_abs_diff.values()), model.parity
        with np.load(artifacts.parent / model.reference) as ref:
            assert ref["b8/in/input"].shape == (8, *spec.input_shape)
            assert ref["b1/out/logits"].shape == (1, spec.num_classes)


def test_a_builtin_spec_goes_through_add_models_path(tmp_path: Path) -> None:
    from rich.progress import Progress

    from models import export

    with Progress(disable=True) as bar:
        export.export_spec_builtin("textclf", tmp_path, bar)
    model = registry.read(tmp_path / "registry" / "textclf.json")
    assert model.builtin and model.converter == "keras-port"
    assert [t.name for t in model.inputs] == ["input_ids", "attention_mask"]
    assert (tmp_path / "torchserve" / "textclf.mar").is_file()
    assert (tmp_path / "tfserving" / "textclf" / "1" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "registry" / "export" / "textclf.json").read_text())["converter"] == "keras-port"
    assert model.spec == "models/zoo/textclf.py"  # relative: the artifacts name the tree's spec wherever it lies
