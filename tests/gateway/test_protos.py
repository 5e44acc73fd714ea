"""Our .proto messages are wire-identical to the public ones; the gateway imports neither torch nor TF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from contract._generated import twinserve_kserve_pb2 as kserve
from contract._generated import twinserve_tfserving_pb2 as tfs
from contract._generated import twinserve_torchserve_pb2 as ts

CONTRACT = Path(__file__).resolve().parents[2] / "contract"
PROTOS, GENERATED = CONTRACT / "protos", CONTRACT / "_generated"


def wire_shape(desc: Descriptor, seen: set[str] | None = None) -> dict[int, object]:
    """Field number -> (type, label, nested wire shape): everything that reaches the wire, no names."""
    seen = set() if seen is None else seen
    if desc.full_name in seen:
        return {}
    seen = seen | {desc.full_name}
    out: dict[int, object] = {}
    for field in desc.fields:
        nested = wire_shape(field.message_type, seen) if field.message_type else None
        out[field.number] = (field.type, field.is_repeated, nested)
    return out


# enum and int32 are the same varint on the wire (we keep tensorflow.error.Code as a plain int32)
VARINT_SAME = {FieldDescriptor.TYPE_ENUM: FieldDescriptor.TYPE_INT32}


def official_kserve() -> object:
    from tritonclient.grpc import service_pb2

    return service_pb2


@pytest.mark.parametrize(
    "name",
    [
        "ServerLiveResponse",
        "ServerReadyResponse",
        "ModelReadyRequest",
        "ModelReadyResponse",
        "ServerMetadataResponse",
        "ModelMetadataRequest",
        "ModelMetadataResponse",
        "ModelInferRequest",
        "ModelInferResponse",
    ],
)
def test_kserve_messages_match_tritonclient(name: str) -> None:
    official = getattr(official_kserve(), name).DESCRIPTOR
    assert wire_shape(getattr(kserve, name).DESCRIPTOR) == wire_shape(official)


def test_tfserving_messages_match_official() -> None:
    pytest.importorskip("tensorflow_serving")
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

    pairs = [
        (tfs.PredictRequest, predict_pb2.PredictRequest, {3}),
        (tfs.PredictResponse, predict_pb2.PredictResponse, set()),
        (tfs.GetModelMetadataRequest, get_model_metadata_pb2.GetModelMetadataRequest, set()),
        (tfs.SignatureDefMap, get_model_metadata_pb2.SignatureDefMap, set()),
        (tfs.GetModelStatusResponse, get_model_status_pb2.GetModelStatusResponse, set()),
    ]
    for ours, theirs, _ in pairs:
        mine, official = wire_shape(ours.DESCRIPTOR), wire_shape(theirs.DESCRIPTOR)
        _assert_subset(mine, official, ours.DESCRIPTOR.name)


def _assert_subset(mine: dict[int, object], official: dict[int, object], where: str) -> None:
    """Every field we declare exists upstream with the same type and label (we may declare fewer)."""
    for number, (ftype, repeated, nested) in mine.items():  # type: ignore[misc]
        assert number in official, f"{where}: field {number} not in the public proto"
        otype, orepeated, onested = official[number]  # type: ignore[misc]
        same = (VARINT_SAME.get(ftype, ftype), repeated) == (VARINT_SAME.get(otype, otype), orepeated)
        assert same, f"{where}: field {number} differs"
        if nested is not None:
            _assert_subset(nested, onested, f"{where}.{number}")


def test_tfserving_bytes_parse_with_official_messages() -> None:
    pytest.importorskip("tensorflow_serving")
    from tensorflow_serving.apis import predict_pb2

    ours = tfs.PredictRequest(model_spec=tfs.ModelSpec(name="digits", signature_name="serving_default"))
    ours.model_spec.version.value = 1
    ours.inputs["input"].dtype = tfs.DT_FLOAT
    ours.inputs["input"].tensor_shape.dim.add(size=2)
    ours.inputs["input"].tensor_content = b"\0" * 8
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.version.value == 1 and theirs.inputs["input"].tensor_shape.dim[0].size == 2
    assert theirs.SerializeToString(deterministic=True) == ours.SerializeToString(deterministic=True)


def test_torchserve_messages_match_the_jar_proto() -> None:
    request = ts.PredictionsRequest(model_name="m", model_version="1.0", input={"input": b"\1\2"})
    shape = wire_shape(ts.PredictionsRequest.DESCRIPTOR)
    assert set(shape) == {1, 2, 3, 4}
    assert ts.PredictionsRequest.FromString(request.SerializeToString()).input["input"] == b"\1\2"


def test_gateway_imports_neither_torch_nor_tensorflow() -> None:
    code = (
        "import gateway.app, gateway.__main__, gateway.grpc_server, sys; "
        "bad = [m for m in ('torch', 'tensorflow', 'tritonclient', 'tensorflow_serving') "
        "if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    """contract/_generated is committed (CI needs no protoc): it must be what protoc makes of contract/protos."""
    pytest.importorskip("grpc_tools")
    protos = sorted(PROTOS.glob("*.proto"))
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={tmp_path}"]
    subprocess.run([*command, f"--pyi_out={tmp_path}", *map(str, protos)], check=True, timeout=120)
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi")))
    assert made == committed and len(made) == 2 * len(protos)
    stale = [name for name in made if (tmp_path / name).read_bytes() != (GENERATED / name).read_bytes()]
    assert not stale, f"regenerate with `make protos`: {stale} differ from contract/protos"
