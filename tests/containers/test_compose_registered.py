"""Every registered model (issue 13) served in the containers: the zoo, the built-in spec textclf and the user's own
models in models.d, each through the containerised gateway pinned to each stack with tritonclient over HTTP (binary
and JSON) and gRPC, at batch 1 and 8, against the torch reference within the model's registered tolerance.

`make test-containers` registers one model the project has never served in containers (tests/byom/specs/pairs.py:
FP32 + INT64 in, FP32 + INT64 out) under SELFTEST_MODEL before `make up STACK=compose` and removes it afterwards, so
under CI (TWINSERVE_CONTAINER_TESTS=1) a user model must be among those served.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from models import registry
from tests.containers.conftest import REPO, ComposeStack

pytestmark = [pytest.mark.containers, pytest.mark.e2e]
STACKS = ("torchserve", "tfserving")
SELFTEST_MODEL = "selftest-pairs"  # scripts/test-containers.sh registers it; keep the two names in step


@cache
def registered() -> dict[str, registry.RegisteredModel]:
    """The registrations `make up STACK=compose` mounted into the gateway (artifacts/registry and models.d)."""
    return registry.load_all(REPO)


@cache
def reference(name: str) -> dict[str, np.ndarray]:
    """The torch reference arrays add-model (or the export) recorded for `name`."""
    with np.load(REPO / registered()[name].reference) as arrays:
        return {key: arrays[key] for key in arrays.files}


def models_to_check() -> list[str]:
    names = sorted(registered()) if (REPO / "artifacts" / "registry").is_dir() else []
    return names or ["<none registered>"]


def check(name: str, batch: int, answer: httpclient.InferResult | grpcclient.InferResult) -> None:
    """Every output has the reference's dtype and shape and agrees within the registered tolerance."""
    model, ref = registered()[name], reference(name)
    for spec in model.outputs:
        got, want = answer.as_numpy(spec.name), ref[f"b{batch}/out/{spec.name}"]
        assert got is not None, f"{name}: no output {spec.name}"
        assert (got.dtype, got.shape) == (want.dtype, want.shape), (name, spec.name, got.dtype, got.shape)
        np.testing.assert_allclose(got, want, atol=model.tolerance.atol, rtol=model.tolerance.rtol, err_msg=name)


def test_a_user_model_is_among_those_served(compose_stack: ComposeStack) -> None:
    """Under CI the run must cover a model from models.d, not only the zoo (test-containers.sh registers one)."""
    user = sorted(name for name, model in registered().items() if not model.builtin)
    if os.environ.get("TWINSERVE_CONTAINER_TESTS") == "1":
        assert SELFTEST_MODEL in user, f"{SELFTEST_MODEL} is not registered; user models: {user}"
    elif not user:
        pytest.skip("no user model registered (make add-model); make test-containers registers one")


@pytest.mark.parametrize("name", models_to_check())
@pytest.mark.parametrize("stack", STACKS)
def test_every_registered_model_matches_torch_through_the_gateway(
    compose_stack: ComposeStack, name: str, stack: str
) -> None:
    assert name in registered(), "nothing registered: run `make export` (or `make up`) first"
    compose_stack.wait_ready(stack, model=name)
    model, ref = registered()[name], reference(name)
    http = httpclient.InferenceServerClient(f"{compose_stack.host}:8000", network_timeout=120)
    grpc_ = grpcclient.InferenceServerClient(f"{compose_stack.host}:8001")
    meta = http.get_model_metadata(name, headers={"X-Backend": stack})
    assert {(t["name"], t["datatype"]) for t in meta["inputs"]} == {(t.name, t.datatype) for t in model.inputs}
    for batch in (1, 8):
        for binary in (True, False):
            inputs = []
            for spec in model.inputs:
                x = ref[f"b{batch}/in/{spec.name}"]
                tensor = httpclient.InferInput(spec.name, list(x.shape), spec.datatype)
                tensor.set_data_from_numpy(x, binary_data=binary)
                inputs.append(tensor)
            outputs = [httpclient.InferRequestedOutput(t.name, binary_data=binary) for t in model.outputs]
            check(name, batch, http.infer(name, inputs, outputs=outputs, headers={"X-Backend": stack}))
        ginputs = []
        for spec in model.inputs:
            x = ref[f"b{batch}/in/{spec.name}"]
            tensor = grpcclient.InferInput(spec.name, list(x.shape), spec.datatype)
            tensor.set_data_from_numpy(x)
            ginputs.append(tensor)
        check(name, batch, grpc_.infer(name, ginputs, headers={"backend": stack}))


def test_the_selftest_spec_is_where_the_script_expects_it() -> None:
    """scripts/test-containers.sh registers this spec; a move would silently drop the user model from the run."""
    script = (REPO / "scripts" / "test-containers.sh").read_text(encoding="utf-8")
    assert "tests/byom/specs/pairs.py" in script and SELFTEST_MODEL in script
    assert (REPO / "tests" / "byom" / "specs" / "pairs.py").is_file()
