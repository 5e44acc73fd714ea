"""The zoo's .mar (spec format, generic handler) on real TorchServe: every request form the zoo handler served.

digits and resnet18 were served by a handler of their own until issue 13 made them spec files; the forms their
users send (the README's curl bodies, the load tests' raw tensors, the gateway's gRPC key "input") must still
get the same answers: rows or columns of logits and probabilities, equal to the exported samples' torch outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests

from contract._generated import twinserve_torchserve_pb2 as ts_pb2

pytestmark = pytest.mark.e2e
PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TIMEOUT = 60.0


def rest(native_stack: Any, model: str, body: bytes, content_type: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{native_stack.ports.ts_inference}/predictions/{model}"
    headers = {"Authorization": f"Bearer {native_stack.token()}", "Content-Type": content_type}
    answer = requests.post(url, data=body, headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def grpc_raw(native_stack: Any, model: str, batch: np.ndarray) -> dict[str, Any]:
    with grpc.insecure_channel(f"127.0.0.1:{native_stack.ports.ts_grpc_inference}") as channel:
        call = channel.unary_unary(
            PREDICTIONS,
            request_serializer=ts_pb2.PredictionsRequest.SerializeToString,
            response_deserializer=ts_pb2.PredictionResponse.FromString,
        )
        request = ts_pb2.PredictionsRequest(model_name=model, input={"input": batch.astype("<f4").tobytes()})
        metadata = (("authorization", f"Bearer {native_stack.token()}"),)
        return json.loads(call(request, metadata=metadata, timeout=TIMEOUT).prediction)


@pytest.mark.parametrize("model", ["digits", "resnet18"])
def test_every_zoo_request_form_answers_the_samples_outputs(native_stack: Any, artifacts: Path, model: str) -> None:
    with np.load(artifacts / "samples" / f"{model}.npz") as samples:
        x, want = samples["inputs"][:3], {k: samples[k][:3] for k in ("logits", "probabilities")}
    as_json = "application/json"
    rows = rest(native_stack, model, json.dumps({"instances": x.tolist()}).encode(), as_json)["predictions"]
    answers = {
        "rows": {k: [row[k] for row in rows] for k in want},
        "columns": rest(native_stack, model, json.dumps({"inputs": x.tolist()}).encode(), as_json)["outputs"],
        "named columns": rest(native_stack, model, json.dumps({"inputs": {"input": x.tolist()}}).encode(), as_json)[
            "outputs"
        ],
        "raw float32": rest(native_stack, model, x.astype("<f4").tobytes(), "application/octet-stream")["outputs"],
        "grpc": grpc_raw(native_stack, model, x)["outputs"],
    }
    for form, outputs in answers.items():
        assert sorted(outputs) == ["logits", "probabilities"], form
        for name, expected in want.items():
            np.testing.assert_allclose(outputs[name], expected, atol=1e-4, err_msg=f"{form}: {name}")
    first = answers["rows"]
    for form, outputs in answers.items():  # one batch of 3, one forward: the forms agree to float32's last bits
        np.testing.assert_allclose(outputs["logits"], first["logits"], rtol=0, atol=1e-6, err_msg=form)


def test_the_readme_sample_body_is_served(native_stack: Any, artifacts: Path) -> None:
    # README: curl -d @artifacts/samples/digits.json .../predictions/digits
    body = (artifacts / "samples" / "digits.json").read_bytes()
    (row,) = rest(native_stack, "digits", body, "application/json")["predictions"]
    with np.load(artifacts / "samples" / "digits.npz") as samples:
        np.testing.assert_allclose(row["logits"], samples["logits"][0], atol=1e-4)
        assert int(np.argmax(row["probabilities"])) == int(samples["labels"][0])
