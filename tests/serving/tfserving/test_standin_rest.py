"""The stand-in's REST API on a real process: status, metadata, predict in both formats, and errors."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from standin_support import StandIn, digits_batch, expected_logits, http

from serving.tfserving.standin import METADATA_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

AVAILABLE = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def predict(standin: StandIn, path: str, body: Any) -> tuple[int, Any]:
    return http("POST", f"{standin.rest}/v1/models/{path}:predict", body)


@pytest.mark.parametrize(
    ("path", "versions"),
    [
        ("digits", ["2"]),  # latest { num_versions: 1 } of versions 1 and 2
        ("tiny_all", ["2", "1"]),
        ("tiny_all/versions/1", ["1"]),
        ("tiny_all/labels/stable", ["1"]),
        ("tiny_all/labels/canary", ["2"]),
        ("tiny_v1", ["1"]),
    ],
)
def test_model_status_lists_the_versions_the_policy_serves(
    standin: StandIn,
    path: str,
    versions: list[str],
) -> None:
    status, body = http("GET", f"{standin.rest}/v1/models/{path}")
    assert status == 200
    assert body == {"model_version_status": [{"version": v, **AVAILABLE} for v in versions]}


def test_metadata_has_tf_servings_shape_and_says_it_is_a_stand_in(standin: StandIn) -> None:
    status, body = http("GET", f"{standin.rest}/v1/models/tiny_all/versions/1/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "tiny_all", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["input"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["input"]["tensor_shape"]["dim"]] == ["-1", "1", "8", "8"]
    assert sorted(sig["outputs"]) == ["logits", "probabilities"]
    assert "STAND-IN" in body[METADATA_KEY] and "not TensorFlow Serving" in body[METADATA_KEY]


def test_row_format_answers_one_object_per_instance(standin: StandIn) -> None:
    x = digits_batch(3)
    status, body = predict(standin, "digits", {"instances": x.tolist()})
    assert status == 200
    assert len(body["predictions"]) == 3
    logits = np.array([p["logits"] for p in body["predictions"]])
    np.testing.assert_allclose(logits, expected_logits(2, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose([sum(p["probabilities"]) for p in body["predictions"]], 1.0, rtol=1e-4)


def test_row_format_also_takes_instances_keyed_by_input_name(standin: StandIn) -> None:
    x = digits_batch(2)
    status, body = predict(standin, "digits", {"instances": [{"input": row} for row in x.tolist()]})
    assert status == 200
    np.testing.assert_allclose([p["logits"] for p in body["predictions"]], expected_logits(2, x), rtol=1e-4)


@pytest.mark.parametrize("keyed", [True, False])
def test_columnar_format_answers_outputs_by_name(standin: StandIn, keyed: bool) -> None:
    x = digits_batch(2)
    inputs = {"input": x.tolist()} if keyed else x.tolist()
    status, body = predict(standin, "digits", {"inputs": inputs})
    assert status == 200
    assert sorted(body["outputs"]) == ["logits", "probabilities"]
    np.testing.assert_allclose(body["outputs"]["logits"], expected_logits(2, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("path", "version"), [("tiny_all/versions/1", 1), ("tiny_all/labels/canary", 2), ("tiny_v1", 1)]
)
def test_versions_and_labels_reach_the_right_weights(standin: StandIn, path: str, version: int) -> None:
    x = digits_batch(1)
    status, body = predict(standin, path, {"instances": x.tolist()})
    assert status == 200
    np.testing.assert_allclose(body["predictions"][0]["logits"], expected_logits(version, x)[0], rtol=1e-4)


def test_signature_name_picks_another_signature_with_several_inputs(standin: StandIn) -> None:
    status, body = predict(
        standin,
        "digits",
        {"signature_name": "add", "instances": [{"a": [1, 2], "b": [10, 20]}, {"a": [0, 1], "b": [1, 1]}]},
    )
    assert (status, body) == (200, {"predictions": [[11.0, 22.0], [1.0, 2.0]]})  # one output: bare values
    columns = {"signature_name": "add", "inputs": {"a": [[1, 1]], "b": [[2, 3]]}}
    status, body = predict(standin, "digits", columns)
    assert (status, body) == (200, {"outputs": [[3.0, 4.0]]})


GOOD_ROW = digits_batch(1).tolist()


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("digits", "instances = [1, 2]", 400, "JSON Parse error"),
        ("digits", "", 400, "JSON Parse error: The document is empty"),
        ("digits", "[1, 2]", 400, "must be a JSON object"),
        (
            "digits",
            {"instances": [[1.0, 2.0]]},
            400,
            "has shape [1, 2] but signature serving_default expects [-1, 1, 8, 8]",
        ),
        (
            "digits",
            {"instances": [[[["x"] * 8] * 8]]},
            400,
            "JSON values of type string are not of expected type float32",
        ),
        ("digits", {"instances": [[[[True] * 8] * 8]]}, 400, "of type bool are not of expected type float32"),
        ("digits", {"instances": [[[[0.0] * 8] * 8], [[[0.0] * 7] * 8]]}, 400, "ragged"),
        ("digits", {"instances": []}, 400, "non-empty JSON list"),
        ("digits", {"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
        ("digits", {"instances": GOOD_ROW, "inputs": GOOD_ROW}, 400, "Not both"),
        (
            "digits",
            {"instances": [{"image": GOOD_ROW[0]}]},
            400,
            "has keys ['image'] but signature serving_default",
        ),
        (
            "digits",
            {"signature_name": "nope", "instances": GOOD_ROW},
            400,
            'Serving signature name: "nope" not found',
        ),
        (
            "digits",
            {"signature_name": 7, "instances": GOOD_ROW},
            400,
            "'signature_name' key must be a string value.",
        ),
        ("nope", {"instances": GOOD_ROW}, 404, "Servable not found for request: Latest(nope)"),
        (
            "digits/versions/1",
            {"instances": GOOD_ROW},
            404,
            "Servable not found for request: Specific(digits, 1)",
        ),
        ("tiny_all/labels/beta", {"instances": GOOD_ROW}, 400, "Unrecognized servable version label: beta"),
        ("digits/versions/99999999999999999999", {"instances": GOOD_ROW}, 400, "Failed to convert version"),
    ],
)
def test_client_mistakes_get_tf_servings_error_and_status(
    standin: StandIn, path: str, body: Any, status: int, message: str
) -> None:
    got_status, got = predict(standin, path, body)
    assert got_status == status
    assert set(got) == {"error"}
    assert message in got["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/v1/models/nope", 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/digits/versions/1", 404, "Could not find version 1 of model digits"),
        ("GET", "/v1/models/digits/labels/beta", 400, "Unrecognized servable version label: beta"),
        ("GET", "/v1/models/nope/metadata", 404, "Latest(nope)"),
        ("GET", "/v1/models", 400, "Missing model name"),
        (
            "GET",
            "/v1/models/digits/versions/one",
            400,
            "Malformed request: GET /v1/models/digits/versions/one",
        ),
        ("GET", "/v1/models/digits:predict", 400, "Malformed request"),
        ("POST", "/v1/models/digits/metadata", 400, "Malformed request"),
        ("GET", "/elsewhere", 404, "Not Found"),
    ],
)
def test_bad_routes_get_json_errors(
    standin: StandIn,
    method: str,
    path: str,
    status: int,
    message: str,
) -> None:
    got_status, got = http(method, f"{standin.rest}{path}", "{}" if method == "POST" else None)
    assert got_status == status
    assert message in got["error"]


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_explain_the_model_has_no_such_signature(standin: StandIn, verb: str) -> None:
    status, body = http("POST", f"{standin.rest}/v1/models/digits:{verb}", {"examples": [{"x": 1.0}]})
    assert status == 400
    assert f"Expected {verb} signature method_name to be tensorflow/serving/{verb}" in body["error"]


def test_an_oversized_body_is_refused_with_413_before_it_is_read(standin: StandIn) -> None:
    with socket.create_connection(("127.0.0.1", standin.rest_port), timeout=30) as s:
        s.sendall(
            b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 70000000\r\n\r\n{"instances": ['
        )
        head = s.recv(65536).decode()
    status_line, _, rest = head.partition("\r\n")
    assert " 413 " in status_line
    error = json.loads(rest.split("\r\n\r\n", 1)[1])["error"]
    assert "request body above the limit of 67108864 bytes: Content-Length is 70000000" in error


def test_an_oversized_chunked_body_is_refused_with_413(standin: StandIn) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(64):
            yield b" " * (1024 * 1024)
        yield b" " * 1024  # just past the limit: the client can finish sending before it reads the 413

    request = urllib.request.Request(f"{standin.rest}/v1/models/digits:predict", data=chunks(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 413
    assert "request body above the limit" in json.loads(info.value.read())["error"]


def test_server_stays_healthy_after_the_mistakes(standin: StandIn) -> None:
    for _ in range(3):
        predict(standin, "digits", "{not json")
        predict(standin, "digits", {"instances": [[1.0]]})
    status, body = predict(standin, "digits", {"instances": GOOD_ROW})
    assert status == 200 and len(body["predictions"]) == 1
