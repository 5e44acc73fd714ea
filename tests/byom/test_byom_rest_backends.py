"""The gateway speaking REST to both stacks (the supervisor's gateway speaks gRPC): registered models still answer
with their signature's datatypes, named outputs, matching torch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from byom_support import SPECS, Byom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from gateway_harness import serve

from gateway.settings import Settings


def rest_settings(byom: Byom) -> Settings:
    p = byom.ports
    return Settings(
        routes_file=None,
        registry_root=byom.root,
        server={"host": "127.0.0.1", "port": 0, "grpc_port": 0},
        backends={
            "torchserve": {
                "protocol": "rest",
                "rest_url": f"http://127.0.0.1:{p.ts_inference}",  # type: ignore[attr-defined]
                "key_file": byom.run_dir / "torchserve" / "key_file.json",
                "management_url": f"http://127.0.0.1:{p.ts_management}",  # type: ignore[attr-defined]
                "timeout_s": 30,
            },
            "tfserving": {"protocol": "rest", "rest_url": f"http://127.0.0.1:{p.tf_rest}", "timeout_s": 30},  # type: ignore[attr-defined]
        },
    )


@pytest.mark.parametrize("model", sorted(SPECS))
def test_rest_upstreams_answer_with_the_signature(byom: Byom, model: str) -> None:
    reg, ref = byom.models[model], byom.references[model]
    with serve(rest_settings(byom)) as running:
        client = httpclient.InferenceServerClient(running.url.removeprefix("http://"))
        assert client.is_model_ready(model)  # metadata is fetched before the gateway serves
        for stack in ("torchserve", "tfserving"):
            inputs = []
            for spec in reg.inputs:
                x = ref[f"b8/in/{spec.name}"]
                tensor = httpclient.InferInput(spec.name, list(x.shape), spec.datatype)
                tensor.set_data_from_numpy(x)
                inputs.append(tensor)
            answer = client.infer(model, inputs, headers={"X-Backend": stack})
            for spec in reg.outputs:
                got, want = answer.as_numpy(spec.name), ref[f"b8/out/{spec.name}"]
                assert got.dtype == want.dtype and got.shape == want.shape, (stack, spec.name, got.dtype)
                np.testing.assert_allclose(got, want, atol=reg.tolerance.atol, rtol=reg.tolerance.rtol)
