"""Flags and config files, read exactly as tensorflow_model_server reads them (protobuf text format)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from contract.ports import CONTRACT
from serving.tfserving.standin.errors import ConfigError

CONTAINER_MODELS_ROOT = PurePosixPath("/models")
"""Where the real server's container mounts the models; `--model_base_path_root` replaces it natively."""
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclass(frozen=True)
class Flags:
    """The command line, a subset of tensorflow_model_server's flags plus two stand-in ones."""

    port: int
    rest_api_port: int
    host: str
    rest_api_host: str
    model_config_file: Path
    model_base_path_root: Path | None
    monitoring_config_file: Path | None
    enable_batching: bool
    batching_parameters_file: Path | None


@dataclass(frozen=True)
class ModelConfig:
    """One entry of models.config, with its base path already mapped to this machine."""

    name: str
    base_path: Path
    policy: str
    """`latest`, `all` or `specific`, as in FileSystemStoragePathSourceConfig.ServableVersionPolicy."""
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    version_labels: dict[str, int] = field(default_factory=dict)

    def select_versions(self, on_disk: Sequence[int]) -> list[int]:
        """The versions this policy serves out of those found on disk, newest first."""
        found = sorted(set(on_disk), reverse=True)
        if self.policy == "all":
            return found
        if self.policy == "specific":
            return [v for v in found if v in self.versions]
        return found[: self.num_versions]


@dataclass(frozen=True)
class BatchingOptions:
    """BatchingParameters with the real server's defaults for every field left out."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    thread_pool_name: str = "batch_threads"
    allowed_batch_sizes: tuple[int, ...] = ()


def _bool_flag(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_flags(argv: Sequence[str] | None = None) -> Flags:
    """Parse tensorflow_model_server-style flags (`--flag=value` and `--flag value` both work)."""
    p = argparse.ArgumentParser(
        prog="python -m serving.tfserving.standin",
        description="twinserve TF Serving STAND-IN (not TensorFlow Serving): TF Serving's REST and gRPC APIs "
        "over tf.saved_model.load, for machines that cannot run the real container.",
    )
    p.add_argument("--port", type=int, default=CONTRACT.tf_grpc, help="gRPC port")
    p.add_argument("--rest_api_port", type=int, default=CONTRACT.tf_rest, help="REST port, with Prometheus metrics")
    p.add_argument("--host", default="127.0.0.1", help="address both servers bind (stand-in only)")
    p.add_argument("--rest_api_host", default=None, help="address the REST server binds; defaults to --host")
    p.add_argument("--model_config_file", type=Path, required=True, help="text ModelServerConfig")
    p.add_argument(
        "--model_base_path_root",
        type=Path,
        default=None,
        help="local folder that replaces the container's /models prefix of every base_path (stand-in only)",
    )
    p.add_argument("--monitoring_config_file", type=Path, default=None, help="text MonitoringConfig")
    p.add_argument("--enable_batching", type=_bool_flag, nargs="?", const=True, default=False)
    p.add_argument("--batching_parameters_file", type=Path, default=None, help="text BatchingParameters")
    a = p.parse_args(argv)
    for name in ("port", "rest_api_port"):
        if not 0 < getattr(a, name) < 65536:
            p.error(f"--{name} must be a TCP port in 1..65535, got {getattr(a, name)}")
    if a.batching_parameters_file is not None and not a.enable_batching:
        p.error("--batching_parameters_file needs --enable_batching (the real server ignores it otherwise)")
    return Flags(
        port=a.port,
        rest_api_port=a.rest_api_port,
        host=a.host,
        rest_api_host=a.rest_api_host or a.host,
        model_config_file=a.model_config_file,
        model_base_path_root=a.model_base_path_root,
        monitoring_config_file=a.monitoring_config_file,
        enable_batching=a.enable_batching,
        batching_parameters_file=a.batching_parameters_file,
    )


def _parse_text(path: Path, message: Message) -> Message:
    try:
        return text_format.Parse(path.read_text(), message)
    except (OSError, text_format.ParseError) as e:
        raise ConfigError(f"cannot read {message.DESCRIPTOR.name} from {path}: {e}") from e


def map_base_path(base_path: str, root: Path | None) -> Path:
    """Map a container base_path under /models to `root`; other paths are used as they are."""
    posix = PurePosixPath(base_path)
    if root is not None and posix.is_relative_to(CONTAINER_MODELS_ROOT):
        return root.joinpath(*posix.relative_to(CONTAINER_MODELS_ROOT).parts)
    return Path(base_path)


def load_model_configs(path: Path, base_path_root: Path | None) -> list[ModelConfig]:
    """Read a text ModelServerConfig; refuse what the stand-in cannot honour rather than ignore it."""
    msc = _parse_text(path, model_server_config_pb2.ModelServerConfig())
    assert isinstance(msc, model_server_config_pb2.ModelServerConfig)
    if msc.WhichOneof("config") != "model_config_list" or not msc.model_config_list.config:
        raise ConfigError(f"{path}: needs a non-empty model_config_list")
    configs: list[ModelConfig] = []
    for mc in msc.model_config_list.config:
        if not mc.name or not mc.base_path:
            raise ConfigError(f"{path}: every model needs a name and a base_path")
        if mc.model_platform not in ("", "tensorflow"):
            raise ConfigError(f'{path}: model {mc.name}: only model_platform "tensorflow" is served')
        if mc.HasField("logging_config"):
            raise ConfigError(f"{path}: model {mc.name}: logging_config is not supported by the stand-in")
        if any(c.name == mc.name for c in configs):
            raise ConfigError(f"{path}: model {mc.name} is configured twice")
        vp = mc.model_version_policy
        kind = vp.WhichOneof("policy_choice") or "latest"
        configs.append(
            ModelConfig(
                name=mc.name,
                base_path=map_base_path(mc.base_path, base_path_root),
                policy=kind,
                num_versions=max(1, vp.latest.num_versions) if kind == "latest" else 1,
                versions=tuple(vp.specific.versions),
                version_labels=dict(mc.version_labels),
            )
        )
    return configs


# The pip package tensorflow-serving-api ships neither monitoring_config.proto nor the BatchingParameters
# message, so both are declared here with the real field numbers and parsed by the same text_format.
def _messages() -> tuple[type[Message], type[Message]]:
    fd = descriptor_pb2.FieldDescriptorProto
    int64, string = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    prometheus = ".tensorflow.serving.PrometheusConfig"
    fields: dict[str, list[tuple[str, int, int, str]]] = {
        "PrometheusConfig": [("enable", 1, fd.TYPE_BOOL, ""), ("path", 2, fd.TYPE_STRING, "")],
        "MonitoringConfig": [("prometheus_config", 1, fd.TYPE_MESSAGE, prometheus)],
        "BatchingParameters": [
            ("max_batch_size", 1, fd.TYPE_MESSAGE, int64),
            ("batch_timeout_micros", 2, fd.TYPE_MESSAGE, int64),
            ("max_enqueued_batches", 3, fd.TYPE_MESSAGE, int64),
            ("num_batch_threads", 4, fd.TYPE_MESSAGE, int64),
            ("thread_pool_name", 5, fd.TYPE_MESSAGE, string),
            ("allowed_batch_sizes", 6, fd.TYPE_INT64, ""),
            ("pad_variable_length_inputs", 7, fd.TYPE_BOOL, ""),
        ],
    }
    f = descriptor_pb2.FileDescriptorProto(
        name="twinserve/tfserving_standin_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for message, specs in fields.items():
        m = f.message_type.add(name=message)
        for name, number, kind, type_name in specs:
            label = fd.LABEL_REPEATED if name == "allowed_batch_sizes" else fd.LABEL_OPTIONAL
            field = m.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with anything in the default one
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(f)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")),
        get(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
    )


_MonitoringConfig, _BatchingParameters = _messages()


def load_prometheus_path(path: Path | None) -> str | None:
    """The Prometheus path from a text MonitoringConfig, or None when metrics are not enabled."""
    if path is None:
        return None
    cfg = _parse_text(path, _MonitoringConfig())
    prom = cfg.prometheus_config  # type: ignore[attr-defined]
    if not prom.enable:
        return None
    metrics_path: str = prom.path or DEFAULT_PROMETHEUS_PATH
    if not metrics_path.startswith("/") or metrics_path.startswith("/v1/"):
        raise ConfigError(f"{path}: prometheus path must start with / but not /v1/, got {metrics_path!r}")
    return metrics_path


def load_batching_options(path: Path | None) -> BatchingOptions:
    """Read a text BatchingParameters file (None: all defaults) and check it as the real server does."""
    d = BatchingOptions()
    if path is None:
        return d
    m = _parse_text(path, _BatchingParameters())

    def wrapped(name: str, default: int) -> int:
        return int(getattr(m, name).value) if m.HasField(name) else default

    opts = BatchingOptions(
        max_batch_size=wrapped("max_batch_size", d.max_batch_size),
        batch_timeout_micros=wrapped("batch_timeout_micros", d.batch_timeout_micros),
        max_enqueued_batches=wrapped("max_enqueued_batches", d.max_enqueued_batches),
        num_batch_threads=wrapped("num_batch_threads", d.num_batch_threads),
        thread_pool_name=m.thread_pool_name.value if m.HasField("thread_pool_name") else d.thread_pool_name,
        allowed_batch_sizes=tuple(int(s) for s in m.allowed_batch_sizes),  # type: ignore[attr-defined]
    )
    problems = []
    if m.pad_variable_length_inputs:  # type: ignore[attr-defined]
        problems.append("pad_variable_length_inputs is not supported by the stand-in")
    if min(opts.max_batch_size, opts.max_enqueued_batches, opts.num_batch_threads) < 1:
        problems.append("max_batch_size, max_enqueued_batches and num_batch_threads must be >= 1")
    if opts.batch_timeout_micros < 0:
        problems.append("batch_timeout_micros must be >= 0")
    sizes = opts.allowed_batch_sizes
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != opts.max_batch_size):
        problems.append("allowed_batch_sizes must increase and its last entry must equal max_batch_size")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return opts
