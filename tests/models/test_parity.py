"""`make parity`: both artifacts from disk agree, and the check really fails on a tampered artifact."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from models import parity


@pytest.mark.parametrize("name", ["digits", "resnet18"])
def test_exported_artifacts_agree(artifacts: Path, name: str) -> None:
    result = parity.compare(name, artifacts, count=256)
    assert result["count"] >= 256
    assert result["top1_agreement"] == 1.0
    assert max(result["max_abs_diff"].values()) <= parity.TOLERANCE
    assert result["passed"]


def test_parity_fails_when_one_artifact_drifts(artifacts: Path, tmp_path: Path) -> None:
    for sub in ("samples", "tfserving/digits"):
        shutil.copytree(artifacts / sub, tmp_path / sub)
    (tmp_path / "torchserve").mkdir()
    with (
        zipfile.ZipFile(artifacts / "torchserve" / "digits.mar") as source,
        zipfile.ZipFile(tmp_path / "torchserve" / "digits.mar", "w") as target,
    ):
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "weights.pt":
                state = torch.load(io.BytesIO(data), weights_only=True)
                state["fc2.bias"] += 1e-3  # a drift ten times the tolerance
                buffer = io.BytesIO()
                torch.save(state, buffer)
                data = buffer.getvalue()
            target.writestr(item, data)
    assert parity.main(["--models", "digits", "--artifacts", str(tmp_path)]) == 1
    written = json.loads((tmp_path / "parity.json").read_text())
    assert not written["digits"]["passed"]
    assert written["digits"]["max_abs_diff"]["logits"] > parity.TOLERANCE
