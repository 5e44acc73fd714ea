"""add-model / remove-model on specs the project has never seen, in a throwaway repository root.

Every export here is real: torch-model-archiver writes the .mar, TF 2.20 writes the SavedModel, and parity
loads both back from disk. Bad specs must fail with a message naming what is wrong and leave nothing behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models import addmodel, registry
from models.addmodel import CollisionError, ExportError, ParityError, UnsupportedOpError
from models.modelspec import SpecError

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).with_name("specs")
TEXTCLF = REPO / "models" / "zoo" / "textclf.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository root of its own: artifacts/ and models.d/ start empty."""
    return tmp_path_factory.mktemp("repo")


@pytest.fixture(scope="module")
def mlp(root: Path) -> registry.RegisteredModel:
    model, _ = addmodel.add_model(SPECS / "mlp.py", "tabular", root)
    return model


@pytest.fixture(scope="module")
def transformer(root: Path) -> registry.RegisteredModel:
    # The built-in transformer's spec file under a user's name: an unseen name, two int64 inputs.
    model, _ = addmodel.add_model(TEXTCLF, "mytext", root)
    return model


def _nothing_left(root: Path, name: str) -> None:
    leftovers = [p for p in root.rglob("*") if name in p.name or p.name.startswith(".staging")]
    assert leftovers == []
    assert name not in registry.load_all(root)


def test_mlp_with_two_outputs_is_exported_proven_and_registered(root: Path, mlp: registry.RegisteredModel) -> None:
    assert registry.get("tabular", root) == registry.read(registry.user_path(root, "tabular"))
    assert [(t.name, t.datatype, t.shape) for t in mlp.inputs] == [("features", "FP32", (-1, 12))]
    assert [(t.name, t.shape) for t in mlp.outputs] == [("scores", (-1, 3)), ("value", (-1, 1))]
    assert mlp.converter == "keras-port" and mlp.parity.batches == (1, 8)
    assert all(d <= 1e-5 for d in mlp.parity.max_abs_diff.values()), mlp.parity
    with zipfile.ZipFile(root / mlp.artifacts["mar"]) as archive:
        names = set(archive.namelist())
        signature = json.loads(archive.read("signature.json"))
    assert {"spec.py", "weights.pt", "signature.json", "twinserve_model.py", "generic_handler.py"} <= names
    assert signature["inputs"] == [t.to_json() for t in mlp.inputs]
    assert signature["outputs"] == [t.to_json() for t in mlp.outputs]
    with np.load(root / mlp.reference) as ref:
        assert sorted(ref.files) == sorted(
            f"b{b}/{kind}/{n}" for b in (1, 8) for kind, n in [("in", "features"), ("out", "scores"), ("out", "value")]
        )


def test_savedmodel_serves_the_torch_names_with_a_dynamic_batch(root: Path, mlp: registry.RegisteredModel) -> None:
    import tensorflow as tf

    signature = tf.saved_model.load(str(root / mlp.artifacts["savedmodel"] / "1")).signatures["serving_default"]
    (_, inputs) = signature.structured_input_signature
    assert {k: (v.shape.as_list(), v.dtype.name) for k, v in inputs.items()} == {"features": ([None, 12], "float32")}
    assert set(signature.structured_outputs) == {"scores", "value"}
    batch = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)  # 5: a batch parity never ran
    out = signature(features=tf.constant(batch))
    assert out["scores"].shape == (5, 3) and out["value"].shape == (5, 1)
    assert (root / mlp.artifacts["savedmodel"] / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_transformer_with_padding_mask(root: Path, transformer: registry.RegisteredModel) -> None:
    assert [(t.name, t.datatype, t.shape) for t in transformer.inputs] == [
        ("input_ids", "INT64", (-1, 32)),
        ("attention_mask", "INT64", (-1, 32)),
    ]
    assert transformer.converter == "keras-port"
    assert transformer.parity.max_abs_diff["logits"] <= 1e-4
    assert sorted(registry.load_all(root)) == ["mytext", "tabular"]


def test_several_dtypes(tmp_path: Path) -> None:
    model, _ = addmodel.add_model(SPECS / "dtypes.py", "mixed", tmp_path)
    assert [(t.name, t.datatype) for t in model.inputs] == [
        ("x", "FP32"), ("counts", "INT32"), ("scale", "FP16"), ("keep", "BOOL"),
    ]  # fmt: skip
    assert [(t.name, t.datatype) for t in model.outputs] == [("y", "FP32"), ("total", "INT32")]
    assert model.parity.max_abs_diff["total"] == 0.0


def test_parity_failure_names_max_delta_per_output_and_the_worst_input(tmp_path: Path) -> None:
    with pytest.raises(ParityError) as caught:
        addmodel.add_model(SPECS / "mlp_wrong_keras.py", "wrong", tmp_path)
    message = str(caught.value)
    assert "parity failed" in message
    assert "output 'scores': max |Δ|" in message and "output 'value': max |Δ|" in message
    assert "FAIL" in message
    assert "worst input: example_inputs(" in message and "features=[" in message
    _nothing_left(tmp_path, "wrong")


def test_unsupported_op_names_the_op_and_the_layer(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError, match=r"unsupported op: layer 'rnn' is a torch\.nn\.modules\.rnn\.GRU"):
        addmodel.add_model(SPECS / "unsupported.py", "recurrent", tmp_path)
    _nothing_left(tmp_path, "recurrent")


def test_input_order_must_match_forward(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        addmodel.add_model(SPECS / "bad_order.py", "badorder", tmp_path)
    assert "example_inputs returns inputs ['attention_mask', 'input_ids']" in str(caught.value)
    assert "Net.forward takes (input_ids, attention_mask)" in str(caught.value)
    _nothing_left(tmp_path, "badorder")


def test_missing_function_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"missing_inputs.py: missing example_inputs; a spec defines build\(\)"):
        addmodel.add_model(SPECS / "missing_inputs.py", "missing", tmp_path)


def test_name_collisions_are_refused(root: Path, mlp: registry.RegisteredModel) -> None:
    with pytest.raises(CollisionError, match=r"'digits' is a built-in model"):
        addmodel.add_model(SPECS / "mlp.py", "digits", root)
    with pytest.raises(CollisionError, match=r"'tabular' is already registered .*remove-model NAME=tabular"):
        addmodel.add_model(SPECS / "mlp.py", "tabular", root)


def test_a_failed_commit_puts_nothing_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: the move of the registration (the last step) fails; the moved artifacts must go away.
    real_move = shutil.move

    def failing_move(src: str, dst: str) -> str:
        if dst.endswith("model.json"):
            raise OSError("disk full")
        return real_move(src, dst)

    monkeypatch.setattr(addmodel.shutil, "move", failing_move)
    with pytest.raises(OSError, match="disk full"):
        addmodel.add_model(SPECS / "mlp.py", "halfway", tmp_path)
    _nothing_left(tmp_path, "halfway")


def test_remove_model_cli_undoes_add_and_refuses_builtins(root: Path, transformer: registry.RegisteredModel) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "models.addmodel", "--root", str(root), *args]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)

    refused = cli("remove", "--name", "digits")
    assert refused.returncode == 1 and "'digits' is a built-in model" in refused.stderr
    done = cli("remove", "--name", "mytext")
    assert done.returncode == 0, done.stderr
    _nothing_left(root, "mytext")
    unknown = cli("remove", "--name", "mytext")
    assert unknown.returncode == 1 and "no user model 'mytext' is registered" in unknown.stderr


def test_remove_model_refuses_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="user models: none"):
        addmodel.remove_model("ghost", tmp_path)


def test_the_readme_example_spec_goes_through(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### A complete spec", 1)[1]
    spec = tmp_path / "readme_spec.py"
    spec.write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    model, _ = addmodel.add_model(spec, "readme", tmp_path)
    assert [t.name for t in model.inputs] == ["input_ids", "attention_mask"] and model.converter == "keras-port"
