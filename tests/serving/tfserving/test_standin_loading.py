"""Loading in-process: signatures and input checks, warm-up replay, version policies, and refusals."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from standin_support import REPO, WARMUP_RECORDS, digits_batch, expected_logits
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.tfserving.standin.config import ModelConfig
from serving.tfserving.standin.errors import ConfigError, InvalidArgumentError, NotFoundError
from serving.tfserving.standin.manager import ModelManager
from serving.tfserving.standin.metrics import Metrics
from serving.tfserving.standin.servables import Servable, discover_versions


@pytest.fixture(scope="module")
def servable(model_root: Path) -> Servable:
    return Servable("digits", 1, model_root / "tiny" / "1")


def test_signatures_come_from_the_saved_model(servable: Servable) -> None:
    assert sorted(servable.signatures) == ["add", "serving_default"]
    sig = servable.signature("")
    assert sig.name == "serving_default"
    assert (sig.inputs["input"].dtype_name, sig.inputs["input"].shape) == ("float32", (-1, 1, 8, 8))
    assert {k: v.shape for k, v in sig.outputs.items()} == {"logits": (-1, 10), "probabilities": (-1, 10)}
    assert sig.batchable
    # Metadata shows the init op too, as the real server's does.
    assert "__saved_model_init_op" in servable.signature_defs.signature_def


def test_run_answers_what_the_weights_say(servable: Servable) -> None:
    x = digits_batch(4)
    out = servable.signature("serving_default").run({"input": x})
    np.testing.assert_allclose(out["logits"], expected_logits(1, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"input": np.zeros((2, 1, 8, 7), np.float32)},
            r"shape \[2, 1, 8, 7\] but signature .* \[-1, 1, 8, 8\]",
        ),
        ({"input": np.zeros((2, 64), np.float32)}, r"shape \[2, 64\]"),
        (
            {"input": np.zeros((2, 1, 8, 8), np.float64)},
            "dtype float64 but signature serving_default expects float32",
        ),
        ({"image": np.zeros((2, 1, 8, 8), np.float32)}, r"missing \['input'\], unexpected \['image'\]"),
    ],
)
def test_inputs_that_do_not_fit_are_invalid_arguments(
    servable: Servable, inputs: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        servable.signature("").validate(inputs)


def test_inputs_of_one_request_need_one_batch_size(servable: Servable) -> None:
    sig = servable.signature("add")
    with pytest.raises(InvalidArgumentError, match="equal 0th-dimension size"):
        sig.validate({"a": np.zeros((2, 2), np.float32), "b": np.zeros((3, 2), np.float32)})
    assert sig.validate({"a": np.zeros((3, 2), np.float32), "b": np.zeros((3, 2), np.float32)}) == 3


def test_unknown_signature_names_the_known_ones(servable: Servable) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r'signature name: "nope" not found.*\[\'add\', \'serving_default\'\]'
    ):
        servable.signature("nope")


def test_warmup_requests_are_replayed(servable: Servable, model_root: Path) -> None:
    assert servable.replay_warmup() == WARMUP_RECORDS
    assert Servable("digits", 2, model_root / "tiny" / "2").replay_warmup() == 0


def test_a_failing_warmup_record_fails_the_load(model_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "1"
    shutil.copytree(model_root / "tiny" / "2", path)
    (path / "assets.extra").mkdir()
    request = predict_pb2.PredictRequest()
    request.inputs["input"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 3, 8, 8), np.float32)))
    with tf.io.TFRecordWriter(str(path / "assets.extra" / "tf_serving_warmup_requests")) as writer:
        writer.write(prediction_log_pb2.PredictionLog(predict_log={"request": request}).SerializeToString())
    with pytest.raises(ConfigError, match=r"warm-up record 0 .* failed: input 'input' has shape \[1, 3, 8"):
        Servable("digits", 1, path).replay_warmup()


def test_an_unreadable_warmup_file_fails_the_load(model_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "1"
    shutil.copytree(model_root / "tiny" / "2", path)
    (path / "assets.extra").mkdir()
    (path / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"not a TFRecord file at all")
    with pytest.raises(ConfigError, match="cannot read warm-up requests"):
        Servable("digits", 1, path).replay_warmup()


def test_version_scan_keeps_numeric_folders_only(model_root: Path) -> None:
    assert sorted(discover_versions(model_root / "tiny")) == [1, 2]
    with pytest.raises(ConfigError, match="not a directory"):
        discover_versions(model_root / "absent")


def test_manager_serves_what_the_policies_select_and_resolves_labels(model_root: Path) -> None:
    tiny = model_root / "tiny"
    configs = [
        ModelConfig("latest", tiny, "latest"),
        ModelConfig("all", tiny, "all", version_labels={"stable": 1}),
    ]
    manager = ModelManager.load(configs, Metrics(), batching=None)
    assert manager.versions("latest") == [2]
    assert manager.versions("all") == [2, 1]
    assert manager.resolve("all").version == 2
    assert manager.resolve("all", label="stable").version == 1
    with pytest.raises(NotFoundError, match=r"Specific\(latest, 1\)"):
        manager.resolve("latest", 1)
    with pytest.raises(InvalidArgumentError, match="Unrecognized servable version label: beta"):
        manager.resolve("all", label="beta")
    with pytest.raises(NotFoundError, match=r"Latest\(nope\)"):
        manager.resolve("nope")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (ModelConfig("m", Path("tiny"), "specific", versions=(1, 5)), r"versions \[5\] not found under"),
        (ModelConfig("m", Path("tiny"), "latest", version_labels={"x": 1}), "label 'x' points at version 1"),
        (ModelConfig("m", Path("tiny/notes"), "latest"), "no version"),
    ],
)
def test_manager_refuses_configs_it_cannot_honour(
    model_root: Path,
    config: ModelConfig,
    problem: str,
) -> None:
    config = dataclasses.replace(config, base_path=model_root / config.base_path)
    with pytest.raises(ConfigError, match=problem):
        ModelManager.load([config], Metrics(), batching=None)


def test_cli_exits_1_with_the_reason_on_a_bad_config(tmp_path: Path) -> None:
    bad = 'model_config_list { config { name: "a" base_path: "/m" oops: 1 } }'
    (tmp_path / "models.config").write_text(bad)
    argv = [
        sys.executable,
        "-m",
        "serving.tfserving.standin",
        f"--model_config_file={tmp_path / 'models.config'}",
    ]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "[tfserving stand-in]" in result.stderr
    assert "cannot start" in result.stderr and "oops" in result.stderr
