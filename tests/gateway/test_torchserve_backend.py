"""TorchServe backend details that its wire protocol forces on the gateway."""

from __future__ import annotations

from gateway.backends.torchserve import grpc_answer_status


def test_torchserve_grpc_error_json_is_read_as_its_status() -> None:
    # TorchServe answers gRPC OK with the handler's error JSON; the gateway must not take it for outputs.
    assert grpc_answer_status(b'{"code": 400, "type": "InvalidInput", "message": "bad shape"}') == 400
    assert grpc_answer_status(b'{"code": 503, "type": "ServiceUnavailable", "message": "x"}') == 503
    assert grpc_answer_status(b'{"outputs": {"logits": [[0.0]]}}') == 200
    assert grpc_answer_status(b'{"code": "nope"}') == 200
    assert grpc_answer_status(b'{"code": 4') == 200
