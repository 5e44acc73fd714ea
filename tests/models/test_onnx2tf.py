"""The ONNX converter path (specs without build_keras()): torch -> ONNX -> onnx2tf in .venv-convert -> TF 2.20.

The converter venv is made by the project's own `make convert-venv` (2 min 17 s here) when missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from models import addmodel, registry
from models.addmodel import UnsupportedOpError

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).with_name("specs")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def convert_venv() -> None:
    subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "convert-venv"], check=True)


def test_convnet_keeps_nchw_and_a_dynamic_batch(tmp_path: Path) -> None:
    import tensorflow as tf

    model, facts = addmodel.add_model(SPECS / "convnet.py", "convnet", tmp_path)
    assert model.converter == "onnx2tf" and facts["converter"] == "onnx2tf"
    assert [(t.name, t.shape) for t in model.inputs] == [("image", (-1, 3, 16, 16))]
    assert model.parity.max_abs_diff["logits"] <= 1e-5
    signature = tf.saved_model.load(str(tmp_path / model.artifacts["savedmodel"] / "1")).signatures["serving_default"]
    assert signature.structured_input_signature[1]["image"].shape.as_list() == [None, 3, 16, 16]  # torch's NCHW
    out = signature(image=tf.constant(np.zeros((3, 3, 16, 16), np.float32)))
    assert list(out) == ["logits"] and out["logits"].shape == (3, 5)
    assert registry.get("convnet", tmp_path).converter == "onnx2tf"


def test_an_op_onnx_cannot_express_is_named_with_its_layer(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError, match=r"unsupported op: aten::linalg_inv in layer 'invert'"):
        addmodel.add_model(SPECS / "onnx_unsupported.py", "invert", tmp_path)
    assert registry.load_all(tmp_path) == {}
    assert not list(tmp_path.rglob("*invert*"))
