"""Flags and config files of the stand-in: the repo's own files, the version policies, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.tfserving.standin.config import (
    BatchingOptions,
    ModelConfig,
    load_batching_options,
    load_model_configs,
    load_prometheus_path,
    map_base_path,
    parse_flags,
)
from serving.tfserving.standin.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
TFSERVING = REPO / "serving" / "tfserving"


def test_repo_models_config_serves_both_models_from_the_container_paths(tmp_path: Path) -> None:
    configs = {c.name: c for c in load_model_configs(TFSERVING / "models.config", tmp_path)}
    assert sorted(configs) == ["digits", "resnet18"]
    for name, cfg in configs.items():
        assert cfg.base_path == tmp_path / name  # /models/<name> mapped onto the local root
        assert (cfg.policy, cfg.num_versions) == ("latest", 1)
    assert "/models/digits" in (TFSERVING / "models.config").read_text()


def test_repo_batching_parameters_are_valid_and_sized_for_two_cores() -> None:
    opts = load_batching_options(TFSERVING / "batching_parameters.txt")
    assert opts.max_batch_size == 32
    assert opts.batch_timeout_micros == 2000
    assert opts.num_batch_threads == 1  # as TorchServe's one worker per model (loadtest/knobs.py)
    assert opts.allowed_batch_sizes == ()  # TorchServe never pads, so TF Serving does not either
    assert opts.max_enqueued_batches == 4


def test_repo_monitoring_config_enables_prometheus_at_the_contract_path() -> None:
    assert load_prometheus_path(TFSERVING / "monitoring.config") == "/monitoring/prometheus/metrics"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (ModelConfig("m", Path("."), "latest", num_versions=1), [7]),
        (ModelConfig("m", Path("."), "latest", num_versions=2), [7, 3]),
        (ModelConfig("m", Path("."), "all"), [7, 3, 1]),
        (ModelConfig("m", Path("."), "specific", versions=(1, 3)), [3, 1]),
        (ModelConfig("m", Path("."), "specific", versions=(5,)), []),
    ],
)
def test_version_policies_select_like_the_real_file_system_source(
    policy: ModelConfig,
    expected: list[int],
) -> None:
    assert policy.select_versions([1, 7, 3]) == expected


def test_policies_and_labels_are_read_from_text_config(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text(
        'model_config_list { config { name: "a" base_path: "/data/a" model_platform: "tensorflow" '
        "model_version_policy { specific { versions: 4 versions: 9 } } "
        "version_labels { key: 'x' value: 9 } } "
        'config { name: "b" base_path: "/models/b" model_version_policy { all {} } } }'
    )
    a, b = load_model_configs(path, tmp_path / "root")
    assert (a.policy, a.versions, a.version_labels, a.base_path) == (
        "specific",
        (4, 9),
        {"x": 9},
        Path("/data/a"),
    )
    assert (b.policy, b.base_path) == ("all", tmp_path / "root" / "b")


def test_base_path_mapping_touches_only_the_models_prefix(tmp_path: Path) -> None:
    assert map_base_path("/models/digits", tmp_path) == tmp_path / "digits"
    assert map_base_path("/modelsX/digits", tmp_path) == Path("/modelsX/digits")
    assert map_base_path("/models/digits", None) == Path("/models/digits")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "non-empty model_config_list"),
        ('model_config_list { config { name: "a" } }', "base_path"),
        (
            'model_config_list { config { name: "a" base_path: "/m" model_platform: "pytorch" } }',
            "model_platform",
        ),
        (
            'model_config_list { config { name: "a" base_path: "/m" } config { name: "a" base_path: "/n" } }',
            "configured twice",
        ),
        ('model_config_list { config { name: "a" base_path: "/m" bogus: 1 } }', "bogus"),
    ],
)
def test_bad_models_config_is_refused_with_the_reason(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "models.config").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_model_configs(tmp_path / "models.config", None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "last entry must equal max_batch_size"),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 8 allowed_batch_sizes: 4", "must increase"),
        ("num_batch_threads { value: 0 }", ">= 1"),
        ("pad_variable_length_inputs: true", "not supported"),
        ("max_batch_size: 8", "max_batch_size"),  # a wrapper, as in the real proto: needs { value: 8 }
        ("no_such_key { value: 1 }", "no_such_key"),
    ],
)
def test_bad_batching_parameters_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "batching.txt").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_batching_options(tmp_path / "batching.txt")


def test_batching_defaults_when_no_file_is_given() -> None:
    assert load_batching_options(None) == BatchingOptions()


def test_prometheus_disabled_or_absent_means_no_endpoint(tmp_path: Path) -> None:
    (tmp_path / "off.config").write_text('prometheus_config { enable: false path: "/metrics" }')
    (tmp_path / "default.config").write_text("prometheus_config { enable: true }")
    assert load_prometheus_path(tmp_path / "off.config") is None
    assert load_prometheus_path(None) is None
    assert load_prometheus_path(tmp_path / "default.config") == "/monitoring/prometheus/metrics"


def test_flags_accept_both_spellings_like_tensorflow_model_server() -> None:
    flags = parse_flags(
        ["--port=9000", "--rest_api_port", "9001", "--model_config_file=m.config", "--enable_batching=false"]
    )
    assert (flags.port, flags.rest_api_port, flags.model_config_file) == (9000, 9001, Path("m.config"))
    assert (flags.host, flags.rest_api_host, flags.enable_batching) == ("127.0.0.1", "127.0.0.1", False)
    flags = parse_flags(["--model_config_file", "m", "--enable_batching", "--rest_api_host", "0.0.0.0"])
    assert (flags.enable_batching, flags.host, flags.rest_api_host) == (True, "127.0.0.1", "0.0.0.0")


@pytest.mark.parametrize(
    "argv",
    [
        ["--model_config_file=m", "--batching_parameters_file=b"],  # the file without --enable_batching
        ["--model_config_file=m", "--port=0"],
        ["--port=8500"],  # no model config
        ["--model_config_file=m", "--no_such_flag=1"],
    ],
)
def test_bad_flags_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(argv)
    assert exit_info.value.code == 2
