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
from byom_support import SPECS, Byom
from tritonclient.utils import InferenceServerException

STACKS = ("torchserve", "tfserving")
MODELS = sorted(SPECS)
NAME = "pairs"  # the bad-input, v1 and batching tests' model: FP32 features, INT64 ids


def check(byom: Byom, model: str, batch: int, answer: Any) -> None:
    """Every output has the reference's dtype and shape and matches it within the registered tolerance."""
    reg = byom.models[model]
    for spec in reg.outputs:
        got, want = answer.as_numpy(spec.name), byom.references[model][f"b{batch}/out/{spec.name}"]
        assert got.dtype == want.dtype and got.shape == want.shape, (model, spec.name, got.dtype, got.shape)
        np.testing.assert_allclose(got, want, atol=reg.tolerance.atol, rtol=reg.tolerance.rtol)


def http_inputs(byom: Byom, model: str, batch: int, binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for spec in byom.models[model].inputs:
        x = byom.references[model][f"b{batch}/in/{spec.name}"]
        tensor = httpclient.InferInput(spec.name, list(x.shape), spec.datatype)
        tensor.set_data_from_numpy(x, binary_data=binary)
        inputs.append(tensor)
    return inputs


def grpc_inputs(byom: Byom, model: str, batch: int, cast: dict[str, Any] | None = None) -> list[grpcclient.InferInput]:
    inputs = []
    for spec in byom.models[model].inputs:
        x, datatype = byom.references[model][f"b{batch}/in/{spec.name}"], spec.datatype
        if cast and spec.name in cast:
            x, datatype = x.astype(cast[spec.name][0]), cast[spec.name][1]
        tensor = grpcclient.InferInput(spec.name, list(x.shape), datatype)
        tensor.set_data_from_numpy(x)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stack", STACKS)
def test_metadata_is_the_registered_signature(byom: Byom, model: str, stack: str) -> None:
    reg = byom.models[model]
    want = {kind: [t.to_json() for t in getattr(reg, kind)] for kind in ("inputs", "outputs")}
    meta = httpclient.InferenceServerClient(byom.http_url).get_model_metadata(model, headers={"X-Backend": stack})
    assert {k: sorted(meta[k], key=str) for k in want} == {k: sorted(v, key=str) for k, v in want.items()}
    assert meta["versions"] == ["1"]
    grpc_meta = grpcclient.InferenceServerClient(byom.grpc_url).get_model_metadata(model, as_json=True)
    assert {(t["name"], t["datatype"]) for t in grpc_meta["inputs"]} == {(t.name, t.datatype) for t in reg.inputs}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_through_the_gateway_matches_torch(byom: Byom, model: str, stack: str, batch: int, binary: bool) -> None:
    client = httpclient.InferenceServerClient(byom.http_url)
    outputs = [httpclient.InferRequestedOutput(t.name, binary_data=binary) for t in byom.models[model].outputs]
    inputs = http_inputs(byom, model, batch, binary)
    check(byom, model, batch, client.infer(model, inputs, outputs=outputs, headers={"X-Backend": stack}))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("batch", [1, 8])
def test_grpc_through_the_gateway_matches_torch(byom: Byom, model: str, stack: str, batch: int) -> None:
    client = grpcclient.InferenceServerClient(byom.grpc_url)
    check(byom, model, batch, client.infer(model, grpc_inputs(byom, model, batch), headers={"backend": stack}))


def test_default_policy_pins_torchserve(byom: Byom) -> None:
    url = f"http://{byom.http_url}/v2/models/{NAME}/infer"
    request = urllib.request.Request(url, data=v2_body(byom), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.headers["X-Backend"] == "torchserve"


@pytest.mark.parametrize("form", ["row", "columnar"])
def test_v1_predict_through_the_gateway_and_on_each_stack(byom: Byom, form: str) -> None:
    """TF Serving's JSON with two named inputs: the same body works on the gateway, the stand-in and TorchServe."""
    reg, ref = byom.models[NAME], byom.references[NAME]
    x = {t.name: ref[f"b8/in/{t.name}"].tolist() for t in reg.inputs}
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
            columns = {t.name: [row[t.name] for row in answer["predictions"]] for t in reg.outputs}
        else:
            columns = answer["outputs"]
        for spec in reg.outputs:
            want, tol = ref[f"b8/out/{spec.name}"], reg.tolerance
            np.testing.assert_allclose(
                np.asarray(columns[spec.name]), want, atol=tol.atol, rtol=tol.rtol, err_msg=where
            )


def v2_body(byom: Byom, batch: int = 1, **override: dict[str, Any]) -> bytes:
    tensors = []
    for spec in byom.models[NAME].inputs:
        x = byom.references[NAME][f"b{batch}/in/{spec.name}"]
        tensor = {"name": spec.name, "datatype": spec.datatype, "shape": list(x.shape), "data": x.ravel().tolist()}
        tensors.append({**tensor, **override.get(spec.name, {})})
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
        client.infer(NAME, grpc_inputs(byom, NAME, 1, cast={"ids": (np.int32, "INT32")}), headers={"backend": stack})
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
        check(byom, NAME, 1, client.infer(NAME, grpc_inputs(byom, NAME, 1), headers={"backend": stack}))

    with ThreadPoolExecutor(requests) as pool:
        list(pool.map(one, range(requests)))
    if stack == "torchserve":
        batches = batch_lines(byom) - before  # type: ignore[operator]
        assert 1 <= batches < requests, f"{requests} concurrent requests ran in {batches} batches"
    else:
        count, rows = (a - b for a, b in zip(standin_batches(byom), before, strict=True))  # type: ignore[arg-type]
        assert rows == requests and 1 <= count < requests, f"{requests} requests ran in {count} batches"
