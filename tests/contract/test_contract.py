"""The contract package: one home per shared fact, read the same way by every component."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import gateway_env, tskeys, v2
from contract._generated import twinserve_kserve_pb2 as kserve
from contract.ports import CONTRACT, Ports
from contract.state import StackState, StateFileError, load

REPO = Path(__file__).resolve().parents[2]


def _keys(path: Path, inference: str) -> None:
    path.write_text(json.dumps({"inference": {"key": inference}, "management": {"key": "m"}, "API": {"key": "a"}}))


def test_key_file_cache_notices_a_renewal_without_being_told(tmp_path: Path) -> None:
    path = tmp_path / tskeys.FILE_NAME
    _keys(path, "one")
    keys = tskeys.KeyFile(path)
    assert keys.key() == "one" and keys.bearer("API") == "Bearer a"
    _keys(path, "two-longer")  # TorchServe's token API rewrote the file
    assert keys.key() == "two-longer"


def test_key_file_reload_after_a_rejection_rereads_even_an_unchanged_stamp(tmp_path: Path) -> None:
    path = tmp_path / tskeys.FILE_NAME
    _keys(path, "one")
    keys = tskeys.KeyFile(path)
    assert keys.key() == "one"
    stamp = os.stat(path)
    _keys(path, "two")  # same size; force the old mtime so only `reload` can see the change
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert keys.key(reload=True) == "two"


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "does not exist"), ("{not json", "unreadable"), ('{"API": {"key": "a"}}', "no 'inference' key")],
)
def test_key_file_errors_name_the_file_and_the_kind(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / tskeys.FILE_NAME
    if content is not None:
        path.write_text(content)
    with pytest.raises(tskeys.KeyFileError, match=match) as err:
        tskeys.read_key(path)
    assert str(path) in str(err.value)


def test_key_rejections_as_torchserve_0_12_answers_them() -> None:
    assert tskeys.rejected(401, b"") and tskeys.rejected(400, b'{"type": "InvalidKeyException"}')
    assert not tskeys.rejected(400, b'{"type": "BadRequestException"}') and not tskeys.rejected(200, b"")
    import grpc

    assert tskeys.grpc_rejected(grpc.StatusCode.PERMISSION_DENIED)
    assert not tskeys.grpc_rejected(grpc.StatusCode.INVALID_ARGUMENT)


def test_v2_bodies_carry_each_inputs_own_datatype_and_bytes() -> None:
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    mask = np.array([[True, False, True]] * 2)
    x = np.linspace(0, 1, 4, dtype=np.float16).reshape(2, 2)
    doc = json.loads(v2.infer_json({"input_ids": ids, "mask": mask, "x": x}, outputs=("logits",)))
    assert [(t["name"], t["datatype"], t["shape"]) for t in doc["inputs"]] == [
        ("input_ids", "INT64", [2, 3]),
        ("mask", "BOOL", [2, 3]),
        ("x", "FP16", [2, 2]),
    ]
    assert doc["inputs"][0]["data"] == [0, 1, 2, 3, 4, 5] and doc["outputs"] == [{"name": "logits"}]
    request = kserve.ModelInferRequest.FromString(
        v2.model_infer_request("m", {"input_ids": ids, "x": x}).SerializeToString()
    )
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [
        ("input_ids", "INT64", [2, 3]),
        ("x", "FP16", [2, 2]),
    ]
    assert np.array_equal(np.frombuffer(request.raw_input_contents[0], "<i8").reshape(2, 3), ids)
    with pytest.raises(ValueError, match="complex64 has no v2 datatype"):
        v2.infer_json({"z": np.zeros(1, np.complex64)})


def test_gateway_env_spellings_are_what_the_gateway_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every variable `for_stack` writes lands in the setting it names (pydantic-settings, the gateway's reader)."""
    from gateway.settings import Settings

    ports = Ports.ephemeral()
    key_file = tmp_path / tskeys.FILE_NAME
    settings = gateway_env.for_stack(
        listen_host="0.0.0.0", client_host="::1", ports=ports, ts_key_file=key_file, api_key_file=tmp_path / "k"
    )
    env = gateway_env.to_env(settings)
    assert env["TWINSERVE_SERVER__PORT"] == str(ports.gateway_rest)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "k").write_text("secret\n")
    read = Settings()
    assert read.server.host == "0.0.0.0" and read.server.port == ports.gateway_rest
    assert read.server.grpc_port == ports.gateway_grpc and read.server.workers == 1
    assert read.backends.torchserve.rest_url == f"http://[::1]:{ports.ts_inference}"
    assert read.backends.torchserve.grpc_target == f"[::1]:{ports.ts_grpc_inference}"
    assert read.backends.torchserve.key_file == key_file
    assert read.backends.tfserving.rest_url == f"http://[::1]:{ports.tf_rest}"
    assert read.api_keys() == ["secret"]
    assert gateway_env.to_env({"a": {"b": None, "c": True, "d": [1, 2]}}) == {
        "TWINSERVE_A__B": "none",
        "TWINSERVE_A__C": "true",
        "TWINSERVE_A__D": "[1, 2]",
    }


def test_state_reader_refuses_a_foreign_or_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load(path) is None
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StateFileError, match="version 99"):
        load(path)
    path.write_text("{")
    with pytest.raises(StateFileError, match="unreadable"):
        load(path)
    state = StackState(str(tmp_path), "artifacts", "127.0.0.1", CONTRACT)
    path.write_text(json.dumps(state.to_dict()))
    assert load(path) == state


def test_contract_imports_no_framework() -> None:
    """Every component imports the contract, the gateway's and load generator's slim images included."""
    code = (
        "import sys, contract.ports, contract.state, contract.tskeys, contract.v2, contract.gateway_env;"
        "import contract._generated.twinserve_kserve_pb2;"
        "heavy = {'torch', 'tensorflow', 'fastapi', 'locust', 'psutil'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
