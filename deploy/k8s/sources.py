"""The sources of truth the manifests are rendered from, read (never copied) from the repository.

Compose gives images, resources, the gateway's environment and the health checks; serving/ gives ports,
TorchServe's config.properties and per-model batching, TF Serving's batching parameters; models.specs gives
the model list; gateway/routes.yaml the routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from contract.ports import Ports
from models.specs import SPECS

REPO = Path(__file__).resolve().parents[2]
_DEFAULTED = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's `${VAR:-default}` with every variable unset: the default (nested lists and dicts too)."""
    if isinstance(value, str):
        return _DEFAULTED.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def read_properties(path: Path) -> dict[str, str]:
    """A Java .properties file as TorchServe reads ours: `key=value` lines, `#` comments."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def read_batching_parameters(path: Path) -> dict[str, Any]:
    """TF Serving's text-format BatchingParameters: scalars `k { value: N }`, repeated `k: N` as lists."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    values: dict[str, Any] = {k: int(v) for k, v in re.findall(r"(\w+)\s*\{\s*value:\s*(\d+)\s*\}", text)}
    for key, v in re.findall(r"^\s*(\w+):\s*(\d+)\s*$", text, flags=re.MULTILINE):
        values.setdefault(key, []).append(int(v))
    return values


@dataclass(frozen=True)
class Model:
    """One served model: name, version and TorchServe's per-model settings (batching, workers, timeout)."""

    name: str
    version: int
    torchserve: dict[str, Any]
    """serving/torchserve/model-config/<name>.yaml (packed into the .mar by `make export`)."""


@dataclass(frozen=True)
class Sources:
    """Everything the renderer needs, loaded once from a checkout."""

    repo: Path = REPO
    gpu: bool = True
    """GPU flavour (docker-compose.yml) or CPU (with docker-compose.cpu.yml's image tags)."""
    ports: Ports = field(default_factory=Ports)
    compose: dict[str, Any] = field(init=False)
    cpu_override: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compose", interpolate(yaml.safe_load((self.repo / "docker-compose.yml").read_text())))
        # A SafeLoader that also knows compose's `!reset`.
        cpu = yaml.load((self.repo / "docker-compose.cpu.yml").read_text(), Loader=_ResetLoader)
        object.__setattr__(self, "cpu_override", interpolate(cpu))

    def service(self, name: str) -> dict[str, Any]:
        """One compose service as `docker compose config` would merge it for this flavour (the parts used here)."""
        svc = dict(self.compose["services"][name])
        if not self.gpu and name in self.cpu_override.get("services", {}):
            over = self.cpu_override["services"][name]
            svc.update({k: v for k, v in over.items() if k in ("image", "command") and v is not _RESET})
            if over.get("command") is _RESET:
                svc.pop("command", None)
            if "environment" in over:
                svc["environment"] = {**svc.get("environment", {}), **over["environment"]}
        return svc

    def image(self, name: str) -> str:
        """The image tag compose gives service `name` in this flavour."""
        return str(self.service(name)["image"])

    def limits(self, name: str) -> dict[str, str]:
        """CPU and memory limits of a compose service, in Kubernetes quantities (`8g` -> `8Gi`)."""
        raw = self.service(name)["deploy"]["resources"]["limits"]
        return {"cpu": str(raw["cpus"]), "memory": memory_quantity(str(raw["memory"]))}

    def gpu_count(self, name: str) -> int:
        """GPUs compose reserves for a service in this flavour (0 without GPUs)."""
        if not self.gpu:
            return 0
        devices = self.service(name)["deploy"]["resources"].get("reservations", {}).get("devices", [])
        return sum(int(d.get("count", 0)) for d in devices if "gpu" in d.get("capabilities", []))

    def healthcheck(self, name: str) -> dict[str, Any]:
        """A compose service's healthcheck (test, interval, timeout, retries, start_period)."""
        return dict(self.service(name)["healthcheck"])

    @property
    def models(self) -> list[Model]:
        """Every served model, from models.specs (the list `make export` exports), with TorchServe's settings."""
        out = []
        for name, spec in sorted(SPECS.items()):
            cfg = yaml.safe_load((self.repo / f"serving/torchserve/model-config/{name}.yaml").read_text())
            out.append(Model(name=name, version=spec.version, torchserve=cfg))
        return out

    @property
    def torchserve_properties(self) -> dict[str, str]:
        """serving/torchserve/config.properties (the file the TorchServe image carries)."""
        return read_properties(self.repo / "serving/torchserve/config.properties")

    @property
    def tf_batching(self) -> dict[str, Any]:
        """serving/tfserving/batching_parameters.txt, parsed."""
        return read_batching_parameters(self.repo / "serving/tfserving/batching_parameters.txt")

    @property
    def tf_batching_text(self) -> str:
        """serving/tfserving/batching_parameters.txt as is (KServe's TF Serving reads it from the storage)."""
        return (self.repo / "serving/tfserving/batching_parameters.txt").read_text()

    @property
    def routes_text(self) -> str:
        """gateway/routes.yaml as is: the gateway's routes ConfigMap."""
        return (self.repo / "gateway/routes.yaml").read_text()

    @property
    def tf_metrics_path(self) -> str:
        """The Prometheus path serving/tfserving/monitoring.config sets on TF Serving's REST port."""
        text = (self.repo / "serving/tfserving/monitoring.config").read_text()
        match = re.search(r'path:\s*"([^"]+)"', text)
        if match is None:
            raise ValueError("serving/tfserving/monitoring.config: no prometheus_config path")
        return match.group(1)


def memory_quantity(compose_size: str) -> str:
    """Compose byte sizes (`8g`, `512m`) as Kubernetes binary quantities (`8Gi`, `512Mi`)."""
    match = re.fullmatch(r"(\d+)([kmg])b?", compose_size.lower())
    if match is None:
        raise ValueError(f"unsupported compose memory size {compose_size!r}")
    return match.group(1) + {"k": "Ki", "m": "Mi", "g": "Gi"}[match.group(2)]


class _Reset:
    """Compose's `!reset` tag: the key goes back to its default (no value)."""


_RESET = _Reset()


class _ResetLoader(yaml.SafeLoader):
    """A SafeLoader that understands compose's `!reset` tag."""


_ResetLoader.add_constructor("!reset", lambda loader, node: _RESET)
