"""The bad-input corpus: REST requests that must each get a 4xx naming the problem, never a 5xx."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

INFER = "/v2/models/digits/infer"
PREDICT = "/v1/models/digits:predict"
MAX_BODY = 1 << 20
"""The gateway's body limit in these tests."""
JSON_CT = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    """One bad request and what must come back: a status in `expect`, an error naming one of `mentions`."""

    id: str
    body: bytes
    path: str = INFER
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_CT))
    expect: tuple[int, ...] = (400,)
    mentions: tuple[str, ...] = ()
    method: str = "POST"


def tensor(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}
    base.update(over)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def body(*tensors: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"inputs": list(tensors), **top}).encode()


VALID = body(tensor())


def cases() -> list[Case]:
    """Every case; ids are unique."""
    out: list[Case] = []
    add = out.append
    # malformed and truncated JSON
    for i, raw in enumerate([b"{", b'{"inputs": [', b"nul", b"[1,2", b'{"inputs": [{"name": "input",}]}', b"{'a': 1}"]):
        add(Case(f"malformed-{i}", raw, mentions=("json",)))
    for cut in (1, 5, 10, 20, 40, 80, len(VALID) // 2, len(VALID) - 1):
        add(Case(f"truncated-at-{cut}", VALID[:cut], mentions=("json",)))
    add(Case("invalid-utf8-body", b'{"inputs": "\xff\xfe"}', mentions=("json", "utf")))
    add(Case("empty-body", b"", mentions=("json",)))
    add(Case("whitespace-body", b"   \n", mentions=("json",)))
    # not an object, inputs missing or wrong
    for i, raw in enumerate([b"[]", b"1", b'"x"', b"null", b"true"]):
        add(Case(f"not-object-{i}", raw, mentions=("object",)))
    for name, raw in {
        "no-inputs": b"{}",
        "inputs-object": b'{"inputs": {}}',
        "inputs-empty": b'{"inputs": []}',
        "inputs-string": b'{"inputs": "x"}',
        "inputs-number": b'{"inputs": [1]}',
        "input-empty-object": b'{"inputs": [{}]}',
        "input-name-number": body(tensor(name=5)),
    }.items():
        add(Case(name, raw, mentions=("input",)))
    for key in ("shape", "datatype", "data"):
        add(Case(f"missing-{key}", body(tensor(**{key: _DROP})), mentions=(key,)))
    # wrong types
    wrong = {
        "shape-string": tensor(shape="1,1,8,8"),
        "shape-str-dim": tensor(shape=[1, "1", 8, 8]),
        "shape-negative": tensor(shape=[-1, 1, 8, 8]),
        "shape-float": tensor(shape=[1.0, 1, 8, 8]),
        "shape-bool": tensor(shape=[True, 1, 8, 8]),
        "shape-nested": tensor(shape=[[1], 1, 8, 8]),
        "shape-null": tensor(shape=None),
        "datatype-number": tensor(datatype=5),
        "datatype-unknown": tensor(datatype="FLOAT"),
        "datatype-lowercase": tensor(datatype="fp32"),
        "data-string": tensor(data="0.5" * 64),
        "data-strings": tensor(data=["0.5"] * 64),
        "data-bools": tensor(data=[True] * 64),
        "data-nulls": tensor(data=[None] * 64),
        "data-objects": tensor(data=[{}] * 64),
        "data-mixed": tensor(data=[0.5] * 63 + ["x"]),
        "data-null": tensor(data=None),
        "data-huge-number": tensor(data=[10**400] * 64),
        "data-fp32-overflow": tensor(data=[1e39] * 64),
        "parameters-list": tensor(parameters=[1]),
        "parameters-string": tensor(parameters="binary"),
    }
    for name, t in wrong.items():
        add(Case(name, body(t), mentions=("input", "tensor", "shape", "datatype", "parameters")))
    add(Case("top-parameters-list", body(tensor(), parameters=[1]), mentions=("parameters",)))
    add(Case("outputs-string", body(tensor(), outputs="logits"), mentions=("outputs",)))
    add(
        Case(
            "outputs-params-list", body(tensor(), outputs=[{"name": "logits", "parameters": [1]}]), mentions=("param",)
        )
    )
    add(Case("outputs-unknown", body(tensor(), outputs=[{"name": "nope"}]), mentions=("nope",)))
    # NaN and Infinity are not JSON
    for lit in ("NaN", "Infinity", "-Infinity"):
        raw = VALID.replace(b"0.5, 0.5]", f"0.5, {lit}]".encode(), 1)
        add(Case(f"literal-{lit}", raw, mentions=(lit.lstrip("-").lower(),)))
    # shapes that disagree with the data or the model
    for name, shape, n in [
        ("data-short", [1, 1, 8, 8], 63),
        ("data-long", [1, 1, 8, 8], 65),
        ("batch-2-data-1", [2, 1, 8, 8], 64),
        ("scalar-shape", [], 64),
        ("model-shape-8x7", [1, 1, 8, 7], 56),
        ("model-shape-flat", [1, 64], 64),
        ("model-shape-1d", [64], 64),
        ("model-shape-3ch", [1, 3, 8, 8], 192),
        ("model-shape-5d", [1, 1, 1, 8, 8], 64),
        ("huge-declared-batch", [10**9, 1, 8, 8], 64),
        ("huge-declared-2-63", [2**63 - 1, 1, 8, 8], 64),
        ("zero-dim-with-data", [0, 1, 8, 8], 64),
    ]:
        add(Case(name, body(tensor(shape=shape, data=[0.5] * n)), mentions=("shape", "element")))
    for dt in ("INT32", "FP64", "FP16", "INT64", "UINT8"):
        add(Case(f"model-dtype-{dt}", body(tensor(datatype=dt, data=[0] * 64)), mentions=("datatype", dt)))
    add(Case("model-dtype-BOOL", body(tensor(datatype="BOOL", data=[False] * 64)), mentions=("datatype",)))
    add(Case("model-dtype-BYTES", body(tensor(datatype="BYTES", data=["a"] * 64)), mentions=("datatype",)))
    add(Case("bytes-int-data", body(tensor(datatype="BYTES", shape=[1], data=[10**9])), mentions=("bytes",)))
    add(Case("wrong-input-name", body(tensor(name="x")), mentions=("x",)))
    add(Case("input-twice", body(tensor(), tensor()), mentions=("twice",)))
    add(Case("lone-surrogate-name", body(tensor(name="\udc80")), mentions=("input",)))
    add(Case("lone-surrogate-bytes", body(tensor(datatype="BYTES", shape=[1], data=["\udc80"])), mentions=("bytes",)))
    # deeply nested arrays
    for depth in (1000, 100_000):
        nested = ("[" * depth + "0.5" + "]" * depth).encode()
        raw = b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": ' + nested + b"}]}"
        add(Case(f"nested-{depth}", raw, mentions=("nested", "element", "shape", "json")))
    add(Case("nested-objects-100000", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, mentions=("nested", "json")))
    # binary extension headers that lie about lengths
    head = body(tensor(data=_DROP, parameters={"binary_data_size": 256}))
    blob = b"\x00" * 256
    for name, hdr, raw in [
        ("bin-header-too-big", str(len(head) + 1000), head + blob),
        ("bin-header-negative", "-1", head + blob),
        ("bin-header-text", "abc", head + blob),
        ("bin-header-exp", "1e3", head + blob),
        ("bin-header-mid-json", str(len(head) // 2), head + blob),
        ("bin-header-zero", "0", head + blob),
        ("bin-tail-short", str(len(head)), head + blob[:255]),
        ("bin-tail-long", str(len(head)), head + blob + b"\x00"),
        ("bin-tail-missing", str(len(head)), head),
    ]:
        add(
            Case(
                name,
                raw,
                headers={**JSON_CT, "Inference-Header-Content-Length": hdr},
                mentions=("binary", "json", "header"),
            )
        )
    for name, size in [
        ("bin-size-negative", -4),
        ("bin-size-string", "256"),
        ("bin-size-huge", 10**12),
        ("bin-size-bool", True),
    ]:
        h = body(tensor(data=_DROP, parameters={"binary_data_size": size}))
        add(
            Case(
                name,
                h + blob,
                headers={**JSON_CT, "Inference-Header-Content-Length": str(len(h))},
                mentions=("binary",),
            )
        )
    # wrong content types with bodies that are not v2 JSON
    add(
        Case(
            "form-encoded",
            b"inputs=1&x=2",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            mentions=("json",),
        )
    )
    add(Case("xml", b"<inputs/>", headers={"Content-Type": "application/xml"}, mentions=("json",)))
    add(
        Case(
            "octet-stream-raw", b"\x00" * 256, headers={"Content-Type": "application/octet-stream"}, mentions=("json",)
        )
    )
    add(
        Case(
            "multipart",
            b"--x\r\n\r\n--x--",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
            mentions=("json",),
        )
    )
    # unknown model, version, path pieces, backends
    add(Case("unknown-model", VALID, path="/v2/models/nope/infer", expect=(404,), mentions=("nope",)))
    add(Case("unknown-version", VALID, path="/v2/models/digits/versions/2/infer", expect=(404,), mentions=("version",)))
    add(Case("version-text", VALID, path="/v2/models/digits/versions/abc/infer", expect=(404,), mentions=("version",)))
    add(Case("model-invalid-utf8", VALID, path="/v2/models/%FF%FE/infer", expect=(404,), mentions=("model",)))
    add(Case("model-unicode", VALID, path="/v2/models/d%C3%AFgits/infer", expect=(404,), mentions=("model",)))
    add(Case("model-very-long", VALID, path="/v2/models/" + "a" * 4000 + "/infer", expect=(404,), mentions=("model",)))
    add(Case("model-meta-unknown", b"", path="/v2/models/nope", method="GET", expect=(404,), mentions=("nope",)))
    add(Case("unknown-backend", VALID, headers={**JSON_CT, "X-Backend": "tritonserver"}, mentions=("backend",)))
    add(Case("backend-case", VALID, headers={**JSON_CT, "X-Backend": "TorchServe"}, mentions=("backend",)))
    add(Case("backend-traversal", VALID, headers={**JSON_CT, "X-Backend": "../tfserving"}, mentions=("backend",)))
    add(Case("get-on-infer", b"", method="GET", expect=(405,)))
    add(Case("put-on-infer", VALID, method="PUT", expect=(405,)))
    add(Case("unknown-path", VALID, path="/v2/models/digits/explain", expect=(404,)))
    # TF Serving's :predict on the gateway
    for name, raw in {
        "predict-no-key": b'{"signature_name": "x"}',
        "predict-instances-number": b'{"instances": 5}',
        "predict-instances-empty": b'{"instances": []}',
        "predict-instances-string": b'{"instances": "abc"}',
        "predict-rows-missing-key": b'{"instances": [{"input": [[[0.5]]]}, {"other": 1}]}',
        "predict-rows-mixed": b'{"instances": [{"input": 1}, 5]}',
        "predict-ragged": b'{"instances": [[1, 2], [1]]}',
        "predict-wrong-shape": b'{"instances": [[0.5, 0.5]]}',
        "predict-strings": b'{"instances": [["a"]]}',
        "predict-unknown-input": b'{"inputs": {"x": [[0.5]]}}',
        "predict-nan": b'{"instances": [[NaN]]}',
        "predict-not-json": b"instances=1",
    }.items():
        add(
            Case(
                name,
                raw,
                path=PREDICT,
                mentions=("instance", "input", "shape", "json", "element", "rectangular", "datatype"),
            )
        )
    add(
        Case(
            "predict-unknown-model",
            b'{"instances": [[0.5]]}',
            path="/v1/models/nope:predict",
            expect=(404,),
            mentions=("nope",),
        )
    )
    return out
