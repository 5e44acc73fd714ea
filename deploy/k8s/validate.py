"""Offline validation of rendered manifests.

Core objects: kubernetes-validate in strict mode (the Kubernetes OpenAPI schemas ship inside the package, so no
cluster and no network is needed). Custom resources (InferenceService, LocustTest): the JSON schemas in
schemas/, written from KServe's and the Locust operator's documented fields. Any other kind is an error.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from deploy.k8s.render import load_all

KUBERNETES_VERSION = "1.33.0"
"""The API version the core objects are checked against (HPA autoscaling/v2 and PDB policy/v1 are GA here)."""
SCHEMAS = Path(__file__).with_name("schemas")
CUSTOM = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.schema.json",
    ("locust.io/v2", "LocustTest"): "locusttest.schema.json",
}


@cache
def custom_schema(file: str) -> dict[str, Any]:
    """One of our CRD schemas, itself checked against its metaschema."""
    schema: dict[str, Any] = json.loads((SCHEMAS / file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def problems_of(obj: dict[str, Any]) -> list[str]:
    """Every validation problem of one object (empty: valid)."""
    kind = (obj.get("apiVersion", ""), obj.get("kind", ""))
    name = f"{kind[1]}/{obj.get('metadata', {}).get('name', '?')}"
    if kind in CUSTOM:
        validator = jsonschema.Draft202012Validator(custom_schema(CUSTOM[kind]))
        errors = validator.iter_errors(obj)
        return [f"{name}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {kind[0]} {kind[1]} (neither core Kubernetes nor one of ours)"]
    except kubernetes_validate.ValidationError as err:
        where = "/".join(map(str, err.path)) or "(root)"
        return [f"{name}: {where}: {err.message}"]
    return []


def validate_dir(root: Path) -> list[str]:
    """Problems of every object in every rendered file under `root` (prefixed with the file)."""
    found = load_all(root)
    if not found:
        return [f"{root}: no manifests (run `make k8s` first)"]
    return [f"{path}: {p}" for path, objects in found.items() for obj in objects for p in problems_of(obj)]
