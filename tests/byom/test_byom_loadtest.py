"""`make bench MODELS=pairs`'s payloads and answer checks: every target (both stacks, REST and gRPC, direct and through
the gateway) answers the calls built from reference.npz, and the check accepts those answers and refuses an answer
checked against a wrong reference; the SLO comes from the registration."""

from __future__ import annotations

import urllib.request
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from byom_support import SPECS, Byom

from loadtest import registered
from loadtest.targets import FRAMEWORKS, PATHS, PROTOCOLS, Target
from loadtest.users.codecs import Call, answer_is_right, calls_for

TARGETS = [(f, p, w) for f in FRAMEWORKS for p in PROTOCOLS for w in PATHS]
NAME = "pairs"


def target(byom: Byom, framework: str, protocol: str, path: str, model: str = NAME) -> Target:
    p = byom.ports
    ports = {
        ("torchserve", "rest", "direct"): p.ts_inference,  # type: ignore[attr-defined]
        ("torchserve", "grpc", "direct"): p.ts_grpc_inference,  # type: ignore[attr-defined]
        ("tfserving", "rest", "direct"): p.tf_rest,  # type: ignore[attr-defined]
        ("tfserving", "grpc", "direct"): p.tf_grpc,  # type: ignore[attr-defined]
    }
    port = ports.get((framework, protocol, path)) or (p.gateway_rest if protocol == "rest" else p.gateway_grpc)  # type: ignore[attr-defined]
    return Target(framework, protocol, path, model, port_override=port)


def send(byom: Byom, t: Target, call: Call) -> bytes:
    auth = (t.framework, t.path) == ("torchserve", "direct")
    if t.protocol == "rest":
        headers = {**call.headers, **({"Authorization": f"Bearer {byom.token()}"} if auth else {})}
        request = urllib.request.Request(f"{t.address}{call.path}", call.body, headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            return bytes(reply.read())
    metadata = list(call.headers.items()) + ([("authorization", f"Bearer {byom.token()}")] if auth else [])
    with grpc.insecure_channel(t.address) as channel:
        rpc = channel.unary_unary(call.path, request_serializer=None, response_deserializer=None)
        return bytes(rpc(call.body, metadata=metadata, timeout=30))


@pytest.mark.parametrize(("framework", "protocol", "path"), TARGETS, ids=["-".join(t) for t in TARGETS])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("model", sorted(SPECS))
def test_every_target_answers_the_reference(
    byom: Byom, framework: str, protocol: str, path: str, batch: int, model: str
) -> None:
    t = target(byom, framework, protocol, path, model)
    calls = calls_for(t, byom.root / "artifacts", batch, limit=3)
    assert calls and all(c.check is not None for c in calls)
    for call in calls:
        assert answer_is_right(t, call, send(byom, t, call)), t.id


def test_the_check_refuses_a_wrong_answer(byom: Byom) -> None:
    """Answers checked against the reference of other rows (a shifted reference) are wrong."""
    artifacts = byom.root / "artifacts"
    ref = registered.load(NAME, artifacts)
    shifted = replace(ref, outputs={k: np.roll(v, 1, axis=0) for k, v in ref.outputs.items()})
    for framework, protocol, path in TARGETS:
        t = target(byom, framework, protocol, path)
        good, bad = registered.calls(t, ref, 1, limit=2), registered.calls(t, shifted, 1, limit=2)
        body = send(byom, t, good[0])
        assert answer_is_right(t, good[0], body) and not answer_is_right(t, bad[0], body), t.id


def test_slo_and_floor_come_from_the_registration(byom: Byom) -> None:
    artifacts: Path = byom.root / "artifacts"
    assert registered.slos([NAME, "digits"], artifacts) == {NAME: 200.0}
    assert registered.is_registered(NAME, artifacts) and not registered.is_registered("digits", artifacts)
