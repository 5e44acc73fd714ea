"""The generic handler on its own (no TorchServe): one batch of mixed requests, each answered alone; shapes that
cannot share a forward pass run apart; every model format it loads; KServe's envelopes.

TorchServe itself runs it in tests/byom (batching, gRPC, tokens); here each request form and error is pinned down.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
SPEC = REPO / "tests" / "byom" / "specs" / "pairs.py"
SIGNATURE = {
    "name": "pairs",
    "version": 1,
    "inputs": [
        {"name": "features", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "ids", "datatype": "INT64", "shape": [-1, 3]},
    ],
    "outputs": [
        {"name": "score", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "count", "datatype": "INT64", "shape": [-1, 1]},
    ],
    "max_batch": 32,
}


class Context:
    """The parts of TorchServe's Context the handler uses."""

    def __init__(self, model_dir: Path, headers: list[dict[str, str]] | None = None, serialized: str = "") -> None:
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.manifest = {"model": {"serializedFile": serialized}} if serialized else {}
        self.headers = headers or []
        self.status: dict[int, int] = {}

    def get_request_header(self, index: int, key: str) -> str | None:
        return self.headers[index].get(key) if index < len(self.headers) else None

    def set_response_status(self, code: int, phrase: str, index: int) -> None:
        self.status[index] = code

    def set_response_content_type(self, index: int, value: str) -> None:
        pass


def spec_module() -> Any:
    spec = importlib.util.spec_from_file_location("pairs_spec_test", SPEC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    module = spec_module()
    model = module.build()
    x = module.example_inputs(5)
    with torch.no_grad():
        score, count = model(*(torch.from_numpy(v) for v in x.values()))
    return model, x, {"score": score.numpy(), "count": count.numpy()}


def packed(tmp_path: Path, model: torch.nn.Module, form: str) -> tuple[Path, str]:
    """A model dir as TorchServe unpacks a .mar: signature.json and the model in `form`."""
    (tmp_path / "signature.json").write_text(json.dumps(SIGNATURE))
    example = tuple(torch.from_numpy(v) for v in spec_module().example_inputs(2).values())
    if form == "spec":
        shutil.copy(SPEC, tmp_path / "spec.py")
        torch.save(model.state_dict(), tmp_path / "weights.pt")
        return tmp_path, "weights.pt"
    if form == "pt2":
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(model, example, dynamic_shapes=({0: batch}, {0: batch}))
        torch.export.save(program, tmp_path / "model.pt2")
        return tmp_path, "model.pt2"
    torch.jit.save(torch.jit.trace(model, example), tmp_path / "model.pt")
    return tmp_path, "model.pt"


def handler(model_dir: Path, serialized: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"generic_handler_{serialized}", REPO / "serving" / "torchserve" / "generic_handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    assert module.handle(None, Context(model_dir, serialized=serialized)) is None  # TorchServe's load call
    return module


@pytest.mark.parametrize("form", ["spec", "pt2", "torchscript"])
def test_each_packed_format_answers_like_torch(tmp_path: Path, reference: Any, form: str) -> None:
    model, x, want = reference
    module = handler(*packed(tmp_path, model, form))
    body = json.dumps({"inputs": {k: v.tolist() for k, v in x.items()}}).encode()
    [answer] = module.handle([{"body": body}], Context(tmp_path, [{"Content-Type": "application/json"}]))
    outputs = json.loads(answer)["outputs"]
    np.testing.assert_allclose(outputs["score"], want["score"], atol=1e-5)
    assert outputs["count"] == want["count"].tolist()


def test_one_batch_of_mixed_forms_each_answered_alone(tmp_path: Path, reference: Any) -> None:
    model, x, want = reference
    module = handler(*packed(tmp_path, model, "spec"))
    rows = [dict(zip(x, values, strict=True)) for values in zip(*(v.tolist() for v in x.values()), strict=True)]
    requests = [
        {"body": json.dumps({"instances": rows[:2]}).encode()},  # row format
        {"features": x["features"][2:4].astype("<f4").tobytes(), "ids": x["ids"][2:4].astype("<i8").tobytes()},  # gRPC
        {"body": json.dumps({"inputs": {"features": [[0.0] * 4], "ids": [[0.5, 1.0, 2.0]]}}).encode()},  # bad dtype
        {"body": json.dumps({"inputs": {k: v[4:].tolist() for k, v in x.items()}}).encode()},  # columnar
        {"body": json.dumps({"inputs": {"features": [[0.0] * 4]}}).encode()},  # missing input
    ]
    context = Context(tmp_path, [{"Content-Type": "application/json"}] * len(requests))
    answers = [json.loads(a) for a in module.handle(requests, context)]
    assert context.status == {2: 400, 4: 400}
    assert "'ids' is INT64" in answers[2]["message"] and "['features', 'ids']" in answers[4]["message"]
    np.testing.assert_allclose([r["score"] for r in answers[0]["predictions"]], want["score"][:2], atol=1e-5)
    assert [r["count"] for r in answers[0]["predictions"]] == want["count"][:2].tolist()
    np.testing.assert_allclose(answers[1]["outputs"]["score"], want["score"][2:4], atol=1e-5)
    assert answers[3]["outputs"]["count"] == want["count"][4:].tolist()


def test_kserve_envelopes(tmp_path: Path, reference: Any) -> None:
    model, x, want = reference
    module = handler(*packed(tmp_path, model, "spec"))
    rows = [dict(zip(x, values, strict=True)) for values in zip(*(v.tolist() for v in x.values()), strict=True)]
    v1 = module.handle(rows, Context(tmp_path))  # KServe v1 hands over the instances of one request
    assert [r["count"] for r in v1] == want["count"].tolist()
    tensors = [{"name": k, "datatype": s["datatype"], "shape": list(v.shape), "data": v.tolist()}
               for (k, v), s in zip(x.items(), SIGNATURE["inputs"], strict=True)]  # fmt: skip
    [score] = module.handle(tensors, Context(tmp_path))  # v2: the first output only, as handler.py
    np.testing.assert_allclose(score, want["score"], atol=1e-5)


def test_kserve_v2_refuses_a_datatype_other_than_the_signatures(tmp_path: Path, reference: Any) -> None:
    # v2 bodies name their datatype; INT64 data for the FP32 input was computed as floats before (the zoo handler
    # answered 400, and so must this one now that it serves digits and resnet18 under KServe too).
    from ts.utils.util import PredictionException

    model, x, _ = reference
    module = handler(*packed(tmp_path, model, "spec"))
    tensors = [{"name": k, "datatype": "INT64", "shape": list(v.shape), "data": v.astype(np.int64).tolist()}
               for k, v in x.items()]  # fmt: skip
    with pytest.raises(PredictionException, match="input 'features' must be FP32, got INT64") as raised:
        module.handle(tensors, Context(tmp_path))
    assert raised.value.error_code == 400
