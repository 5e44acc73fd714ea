"""schemathesis against the gateway's OpenAPI (the FastAPI app's own schema, with the v2 inference body
described so bodies get generated), sent to the real gateway process on the real stacks: no 5xx, ever."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gateway.app import create_app
from gateway.settings import Settings

pytestmark = pytest.mark.e2e

V2_TENSOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["FP32", "FP64", "INT32", "BYTES", "BOOL", "FP16", "X"]},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
BODIES = {
    "infer": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": V2_TENSOR, "maxItems": 3},
            "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "parameters": {"type": "object"},
        },
    },
    "predict": {
        "type": "object",
        "properties": {"instances": {"type": "array"}, "inputs": {}, "signature_name": {"type": "string"}},
    },
}


def gateway_schema() -> dict[str, Any]:
    """The app's OpenAPI (docs are not served, so built from the app object) plus request bodies."""
    settings_ = Settings(routes_file=None, routes={"models": {"digits": {}}})
    spec = create_app(settings_).openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "post":
                kind = "infer" if path.endswith("/infer") else "predict"
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": BODIES[kind]}}}
    return spec


schema = schemathesis.openapi.from_dict(gateway_schema())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, bad_gateway: Any) -> None:
    response = case.call(base_url=bad_gateway.url, timeout=15)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )
