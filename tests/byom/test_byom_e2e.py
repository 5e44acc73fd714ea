"""A registered two-input (FP32, INT64), two-output (FP32, INT64) model end to end: tritonclient over HTTP and gRPC
through the gateway, pinned to each stack, answers match the torch reference within the registered tolerance;
server-side batching joins concurrent requests on both stacks; bad input is a 4xx / INVALID_ARGUMENT naming it."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import Byom
from fixture_model import INPUTS, NAME, OUTPUTS
from tritonclient.utils import InferenceServerException

STACKS = ("torchserve", "tfserving")
ATOL, RTOL = 1e-5, 1e-4  # the registration's tolerance
DATATYPES = {t["name"]: t["datatype"] for t in INPUTS}


def check(byom: Byom, batch: int, answer: Any) -> None:
    """Every output has the reference's dtype and shape and matches it within the tolerance."""
    for spec in OUTPUTS:
        got, want = answer.as_numpy(spec["name"]), byom.reference[f"b{batch}/out/{spec['name']}"]
        assert got.dtype == want.dtype and got.shape == want.shape, (spec["name"], got.dtype, got.shape)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


def http_inputs(byom: Byom, batch: int, binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for name, datatype in DATATYPES.items():
        x = byom.reference[f"b{batch}/in/{name}"]
        tensor = httpclient.InferInput(name, list(x.shape), datatype)
        tensor.set_data_from_numpy(x, binary_data=binary)
        inputs.append(tensor)
    return inputs


def grpc_inputs(byom: Byom, batch: int, cast: dict[str, Any] | None = None) -> list[grpcclient.InferInput]:
    inputs = []
    for name, declared in DATATYPES.items():
        x, datatype = byom.reference[f"b{batch}/in/{name}"], declared
        if cast and name in cast:
            x, datatype = x.astype(cast[name][0]), cast[name][1]
        tensor = grpcclient.InferInput(name, list(x.shape), datatype)
        tensor.set_data_from_numpy(x)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("stack", STACKS)
def test_metadata_is_the_registered_signature(byom: Byom, stack: str) -> None:
    meta = httpclient.InferenceServerClient(byom.http_url).get_model_metadata(NAME, headers={"X-Backend": stack})
    assert meta["inputs"] == INPUTS and meta["outputs"] == OUTPUTS and meta["versions"] == ["1"]
    grpc_meta = grpcclient.InferenceServerClient(byom.grpc_url).get_model_metadata(NAME, as_json=True)
    assert [(t["name"], t["datatype"]) for t in grpc_meta["inputs"]] == [(t["name"], t["datatype"]) for t in INPUTS]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_through_the_gateway_matches_torch(byom: Byom, stack: str, batch: int, binary: bool) -> None:
    client = httpclient.InferenceServerClient(byom.http_url)
    outputs = [httpclient.InferRequestedOutput(t["name"], binary_data=binary) for t in OUTPUTS]
    answer = client.infer(NAME, http_inputs(byom, batch, binary), outputs=outputs, headers={"X-Backend": stack})
    check(byom, batch, answer)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("batch", [1, 8])
def test_grpc_through_the_gateway_matches_torch(byom: Byom, stack: str, batch: int) -> None:
    client = grpcclient.InferenceServerClient(byom.grpc_url)
    check(byom, batch, client.infer(NAME, grpc_inputs(byom, batch), headers={"backend": stack}))


def test_default_policy_pins_torchserve(byom: Byom) -> None:
    url = f"http://{byom.http_url}/v2/models/{NAME}/infer"
    request = urllib.request.Request(url, data=v2_body(byom), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.headers["X-Backend"] == "torchserve"


@pytest.mark.parametrize("form", ["row", "columnar"])
def test_v1_predict_through_the_gateway_and_on_each_stack(byom: Byom, form: str) -> None:
    """TF Serving's JSON with two named inputs: the same body works on the gateway, the stand-in and TorchServe."""
    x = {name: byom.reference[f"b8/in/{name}"].tolist() for name in DATATYPES}
    if form == "row":
        body = {"instances": [dict(zip(x, values, strict=True)) for values in zip(*x.values(), strict=True)]}
    else:
        body = {"inputs": x}
    p = byom.ports
    urls = {
        "gateway": (f"http://{byom.http_url}/v1/models/{NAME}:predict", {}),
        "tfserving": (f"http://127.0.0.1:{p.tf_rest}/v1/models/{NAME}:predict", {}),  # type: ignore[attr-defined]
        "torchserve": (
            f"http://127.0.0.1:{p.ts_inference}/predictions/{NAME}",  # type: ignore[attr-defined]
            {"Authorization": f"Bearer {byom.token()}"},
        ),
    }
    for where, (url, headers) in urls.items():
        status, answer = post(url, json.dumps(body).encode(), headers)
        assert status == 200, (where, answer)
        if form == "row":
            columns = {t["name"]: [row[t["name"]] for row in answer["predictions"]] for t in OUTPUTS}
        else:
            columns = answer["outputs"]
        for spec in OUTPUTS:
            want = byom.reference[f"b8/out/{spec['name']}"]
            np.testing.assert_allclose(np.asarray(columns[spec["name"]]), want, atol=ATOL, rtol=RTOL, err_msg=where)


def v2_body(byom: Byom, batch: int = 1, **override: dict[str, Any]) -> bytes:
    tensors = []
    for name, datatype in DATATYPES.items():
        x = byom.reference[f"b{batch}/in/{name}"]
        tensor = {"name": name, "datatype": datatype, "shape": list(x.shape), "data": x.ravel().tolist()}
        tensors.append({**tensor, **override.get(name, {})})
    return json.dumps({"inputs": tensors}).encode()


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


BAD = {
    "wrong dtype": ({"ids": {"datatype": "FP32"}}, r"'ids'.*FP32.*INT64"),
    "wrong shape": ({"ids": {"shape": [1, 2], "data": [1, 2]}}, r"'ids'.*shape \[1, 2\].*\[-1, 3\]"),
    "wrong name": ({"ids": {"name": "tokens"}}, r"unknown input 'tokens'.*\['features', 'ids'\]"),
}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_400_naming_it(byom: Byom, stack: str, case: str) -> None:
    override, message = BAD[case]
    status, answer = post(
        f"http://{byom.http_url}/v2/models/{NAME}/infer", v2_body(byom, **override), {"X-Backend": stack}
    )
    assert status == 400, answer
    assert re.search(message, answer["error"]), answer


@pytest.mark.parametrize("stack", STACKS)
def test_bad_input_over_grpc_is_invalid_argument(byom: Byom, stack: str) -> None:
    client = grpcclient.InferenceServerClient(byom.grpc_url)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(NAME, grpc_inputs(byom, 1, cast={"ids": (np.int32, "INT32")}), headers={"backend": stack})
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert re.search(r"'ids'.*INT32.*INT64", caught.value.message())


def test_torchserve_handler_names_a_bad_input_itself(byom: Byom) -> None:
    """Straight to TorchServe (no gateway check in front): the generic handler's own 400 names the input."""
    p = byom.ports
    url = f"http://127.0.0.1:{p.ts_inference}/predictions/{NAME}"  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {byom.token()}"}
    bad = {"features": [[0.0] * 4], "ids": [[0.5, 1.0, 2.0]]}
    status, answer = post(url, json.dumps({"inputs": bad}).encode(), auth)
    assert status == 400 and re.search(r"'ids' is INT64", answer["message"]), answer
    status, answer = post(url, json.dumps({"inputs": {"features": [[0.0] * 4]}}).encode(), auth)
    assert status == 400 and "['features', 'ids']" in answer["message"], answer


def batch_lines(byom: Byom) -> int:
    """How many batches TorchServe's `pairs` worker ran: it logs one line per handler call."""
    log = byom.run_dir / "torchserve" / "logs" / "model_log.log"
    return sum("pairs" in line and "Backend received inference" in line for line in log.read_text().splitlines())


def standin_batches(byom: Byom) -> tuple[float, float]:
    """(batches run, rows in them) for `pairs` from the stand-in's batching histogram."""
    url = f"http://127.0.0.1:{byom.ports.tf_rest}/monitoring/prometheus/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    values = {}
    for kind in ("count", "sum"):
        found = re.search(rf'twinserve_tfserving_standin_batch_size_{kind}{{model_name="pairs"}} (\S+)', text)
        values[kind] = float(found.group(1)) if found else 0.0
    return values["count"], values["sum"]


@pytest.mark.parametrize("stack", STACKS)
def test_server_side_batching_joins_concurrent_requests(byom: Byom, stack: str) -> None:
    requests = 16
    client = grpcclient.InferenceServerClient(byom.grpc_url)
    before = batch_lines(byom) if stack == "torchserve" else standin_batches(byom)

    def one(_: int) -> None:
        check(byom, 1, client.infer(NAME, grpc_inputs(byom, 1), headers={"backend": stack}))

    with ThreadPoolExecutor(requests) as pool:
        list(pool.map(one, range(requests)))
    if stack == "torchserve":
        batches = batch_lines(byom) - before  # type: ignore[operator]
        assert 1 <= batches < requests, f"{requests} concurrent requests ran in {batches} batches"
    else:
        count, rows = (a - b for a, b in zip(standin_batches(byom), before, strict=True))  # type: ignore[arg-type]
        assert rows == requests and 1 <= count < requests, f"{requests} requests ran in {count} batches"
