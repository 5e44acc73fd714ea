"""schemathesis against the gateway's own OpenAPI document, sent to the real gateway process on the real stacks.

The document is the one `/openapi.json` serves (gateway/openapi.py), so every inference route is fuzzed with
bodies generated from its documented schema, valid and invalid: no 5xx, ever, and a body that breaks the
documented schema is a 4xx.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from gateway.app import create_app
from gateway.rest import INFERENCE_ROUTES
from gateway.settings import Settings

pytestmark = pytest.mark.e2e
INFERENCE_PATHS = {path for path, _ in INFERENCE_ROUTES}
EXPECTED = {
    "/v2/models/{model}/infer",
    "/v2/models/{model}/versions/{version}/infer",
    "/v1/models/{model}:predict",
    "/v1/models/{model}/versions/{version}:predict",
}


def gateway_schema() -> dict[str, Any]:
    """The document the fuzzed gateway serves (same code, same routed model); docs UIs stay off."""
    settings_ = Settings(routes_file=None, routes={"models": {"digits": {"policy": "failover"}}})
    return create_app(settings_, backends={}).openapi()


schema = schemathesis.openapi.from_dict(gateway_schema())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, bad_gateway: Any) -> None:
    response = case.call(base_url=bad_gateway.url, timeout=15)
    body = str(case.body)[:200]
    what = f"{case.method} {case.formatted_path} body={body!r}: {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, what
    if case.method == "POST" and case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
        assert 400 <= response.status_code < 500, what


def test_every_inference_route_is_documented() -> None:
    """Every POST route the app serves has an operation with a request body in the schema, the four known ones too."""
    app = create_app(Settings(routes_file=None, routes={"models": {"digits": {}}}), backends={})
    served = {route.path for route in app.router.routes if "POST" in (getattr(route, "methods", None) or ())}
    assert served >= EXPECTED, "an inference route is no longer served"
    paths = app.openapi()["paths"]
    for path in served:
        assert "post" in paths.get(path, {}), f"POST {path} is missing from the OpenAPI document"
        content = paths[path]["post"]["requestBody"]["content"]
        assert content["application/json"]["schema"], path
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert {("POST", p) for p in EXPECTED} <= operations, "the fuzzer would not exercise every inference route"


def test_served_document_names_every_inference_route(bad_gateway: Any) -> None:
    """`/openapi.json` on the running gateway is the document the fuzzer uses."""
    reply = requests.get(bad_gateway.url + "/openapi.json", timeout=10)
    assert reply.status_code == 200, reply.text[:200]
    served = reply.json()["paths"]
    for path in EXPECTED:
        body = served[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].rsplit("/", 1)[1] in ("InferRequestBody", "PredictRequestBody"), path
    assert set(served) == set(gateway_schema()["paths"])
