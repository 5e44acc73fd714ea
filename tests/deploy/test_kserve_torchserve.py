"""twinserve's handler under KServe: a real TorchServe started as kserve-torchserve starts it (kserve_torchserve.py),
on the storage `make k8s-artifacts` lays out, answering exactly what KServe's front end forwards (v1 and v2)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.deploy.kserve_torchserve import KServeTorchServe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_v1_instances_come_back_as_named_predictions(ts_v1: KServeTorchServe, digits: dict[str, np.ndarray]) -> None:
    # The body a KServe v1 client sends, forwarded unchanged: {"instances": [...]}.
    reply = ts_v1.v1_predict("digits", {"instances": digits["inputs"][:3].tolist()})
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert [sorted(p) for p in predictions] == [["logits", "probabilities"]] * 3
    np.testing.assert_allclose([p["logits"] for p in predictions], digits["logits"][:3], atol=1e-4)
    np.testing.assert_allclose([p["probabilities"] for p in predictions], digits["probabilities"][:3], atol=1e-5)


def test_v1_sample_file_as_is(ts_v1: KServeTorchServe, artifacts: Path, digits: dict[str, np.ndarray]) -> None:
    # samples/<m>.json (what the Locust workers send) is already a KServe v1 body.
    reply = ts_v1.v1_predict("digits", json.loads((artifacts / "samples/digits.json").read_text()))
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["predictions"]) >= 1


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"instances": [[1.0, 2.0]]}, "expected [-1, 1, 8, 8]"),
        ({"instances": []}, "non-empty list"),
        ({"inputs": [[0.0]]}, '"instances"'),
        ({"instances": [["a"] * 8] * 8}, "is FP32; got strings"),
    ],
)
def test_v1_bad_bodies_are_400_naming_the_problem(ts_v1: KServeTorchServe, body: object, named: str) -> None:
    reply = ts_v1.v1_predict("digits", body)
    assert reply.status_code == 400, reply.text
    assert named in reply.json()["message"]


def test_v1_concurrent_requests_are_all_answered(ts_v1: KServeTorchServe, digits: dict[str, np.ndarray]) -> None:
    # The envelope answers only the first request of a TorchServe batch, so the KServe config must batch 1:
    # with the model-config's batchSize 32, requests that met in one batch all failed with 503.
    def one(i: int) -> tuple[int, list[list[float]]]:
        reply = ts_v1.v1_predict("digits", {"instances": digits["inputs"][i : i + 2].tolist()})
        logits = [p["logits"] for p in reply.json()["predictions"]] if reply.status_code == 200 else []
        return reply.status_code, logits

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    assert [status for status, _ in results] == [200] * 64
    for i, (_, logits) in enumerate(results):
        np.testing.assert_allclose(logits, digits["logits"][i : i + 2], atol=1e-4)


def v2_body(batch: np.ndarray, name: str = "input", datatype: str = "FP32") -> dict[str, object]:
    """kserve 0.13's InferRequest.to_rest(): an id and flat, non-binary data."""
    return {
        "id": str(uuid.uuid4()),
        "inputs": [{"name": name, "shape": list(batch.shape), "datatype": datatype, "data": batch.ravel().tolist()}],
    }


def test_v2_inputs_come_back_as_the_first_output(ts_v2: KServeTorchServe, digits: dict[str, np.ndarray]) -> None:
    body = v2_body(digits["inputs"][:2])
    reply = ts_v2.v2_infer("digits", body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["id"] == body["id"] and answer["model_name"] == "digits"
    # TorchServe 0.12.0's v2 envelope names each answer after an input and flattens it.
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("input", "FP32", [20])
    np.testing.assert_allclose(np.reshape(output["data"], (2, 10)), digits["logits"][:2], atol=1e-4)


@pytest.mark.parametrize(
    ("name", "datatype", "named"),
    [("pixels", "FP32", "the model takes ['input']"), ("input", "INT64", "input 'input' must be FP32, got INT64")],
)
def test_v2_bad_inputs_are_400_naming_the_problem(
    ts_v2: KServeTorchServe, digits: dict[str, np.ndarray], name: str, datatype: str, named: str
) -> None:
    batch = digits["inputs"][:1] if datatype == "FP32" else np.zeros((1, 1, 8, 8), np.int64)
    reply = ts_v2.v2_infer("digits", v2_body(batch, name, datatype))
    assert reply.status_code == 400, reply.text
    assert named in reply.json()["message"]
