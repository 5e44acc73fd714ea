"""The gateway's one typed settings object: env prefix TWINSERVE_, nested with `__`, routes from YAML.

Precedence (highest first): init kwargs, environment (`TWINSERVE_ROUTES__MODELS__DIGITS__POLICY=split`),
the routes YAML file (`TWINSERVE_ROUTES_FILE`, default gateway/routes.yaml), field defaults. The auth, health,
shadow and breaker settings lived under `limits` before; their old names (`TWINSERVE_LIMITS__API_KEYS`,
`TWINSERVE_LIMITS__HEALTH_INTERVAL_S`, ...: LEGACY_LIMITS) still work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from contract import gateway_env
from contract.ports import CONTRACT
from gateway import registered

BackendName = Literal["torchserve", "tfserving"]
BACKENDS: tuple[BackendName, ...] = ("torchserve", "tfserving")
DEFAULT_ROUTES_FILE = Path(__file__).with_name("routes.yaml")


class _Section(BaseModel):
    """Base of every section: an unknown key is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class TensorSpec(_Section):
    """One declared tensor of a model signature (-1 marks a variable dimension)."""

    name: str
    datatype: str = "FP32"
    shape: list[int]


class Signature(_Section):
    """A model signature declared in the routes file; TorchServe cannot report one itself."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class ModelEndpoint(_Section):
    """Where one model lives on one stack when it has its own server (a KServe InferenceService: a host per model)."""

    protocol: Literal["rest", "grpc", "kserve-v1"] | None = None
    """The stack's native `rest` or `grpc`, or KServe's v1 REST protocol (`kserve-v1`, TorchServe behind the
    kserve-torchserve runtime); None: the stack's own `protocol`."""
    rest_url: str | None = None
    """Base URL for `rest` and `kserve-v1`, e.g. http://digits-predictor.ns.svc.cluster.local (None: the stack's)."""
    grpc_target: str | None = None
    """host:port for `grpc` (None: the stack's)."""

    @field_validator("rest_url")
    @classmethod
    def _http_base_url(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", url):
            raise ValueError(f"rest_url {url!r} must be an http:// or https:// base URL without query")
        return url.rstrip("/") if url else url

    @field_validator("grpc_target")
    @classmethod
    def _host_port(cls, target: str | None) -> str | None:
        if target is not None and not re.fullmatch(r"[^\s/:]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", target):
            raise ValueError(f"grpc_target {target!r} must be host:port")
        return target

    @model_validator(mode="after")
    def _says_something(self) -> ModelEndpoint:
        if self.protocol is None and self.rest_url is None and self.grpc_target is None:
            raise ValueError("an endpoint override needs protocol, rest_url or grpc_target")
        return self


class Route(_Section):
    """How requests for one model are routed."""

    policy: Literal["pin", "split", "shadow", "failover"] = "pin"
    """Routing policy: pin to `backend`, split by `weights`, shadow to the other, or failover to it."""
    backend: BackendName = "torchserve"
    """Default backend for `pin`; primary for `shadow` and `failover`."""
    weights: dict[BackendName, float] = Field(default_factory=lambda: dict.fromkeys(BACKENDS, 0.5))
    """Traffic share per backend for `split` (normalised; need not sum to 1)."""
    sticky_header: str | None = None
    """For `split`: a header (gRPC metadata key) whose value is hashed so one key always hits one backend."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Deadline for the whole request including a failover retry; past it the client gets 504."""
    failover_after_s: float | None = Field(default=None, gt=0)
    """`failover`: how long the primary may take before the fallback is tried (default: half of `timeout_s`)."""
    versions: list[str] = Field(default_factory=lambda: ["1"])
    """Versions exposed on the v2 API; another version is a 404."""
    signature: Signature | None = None
    """Expected signature; TF Serving's is fetched and must agree, TorchServe's is verified by a probe."""
    endpoints: dict[BackendName, ModelEndpoint] = Field(default_factory=dict)
    """Per stack, this model's own address and protocol, overriding the stack's (`backends.<stack>`) for it."""

    @model_validator(mode="after")
    def _endpoints_fit(self) -> Route:
        tf = self.endpoints.get("tfserving")
        if tf is not None and tf.protocol == "kserve-v1":
            # kserve-tensorflow-serving runs TF Serving itself: its own REST/gRPC API, which `rest`/`grpc` speak.
            raise ValueError("endpoints.tfserving: protocol kserve-v1 is for TorchServe; TF Serving speaks rest/grpc")
        kserve = [b for b, e in self.endpoints.items() if e.protocol == "kserve-v1"]
        if kserve and len(self.versions) != 1:
            raise ValueError(
                f"endpoints.{kserve[0]}: KServe's v1 protocol serves one version; versions lists {len(self.versions)}"
            )
        return self


class RoutesSettings(_Section):
    """The models the gateway serves and their routing policies."""

    models: dict[str, Route] = Field(default_factory=dict)
    """Per-model route, keyed by model name (only these models are reachable)."""


class BackendSettings(_Section):
    """How to reach one serving stack."""

    enabled: bool = True
    """Whether the gateway uses this backend at all."""
    protocol: Literal["rest", "grpc"] = "grpc"
    """Which of the backend's native protocols the gateway speaks to it."""
    rest_url: str = f"http://127.0.0.1:{CONTRACT.ts_inference}"
    """Base URL of the backend's REST inference API."""
    grpc_target: str = f"127.0.0.1:{CONTRACT.ts_grpc_inference}"
    """host:port of the backend's gRPC inference API."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Per-attempt timeout of one upstream call (the route deadline caps it)."""
    max_in_flight: int = Field(default=64, ge=1)
    """Concurrent upstream calls allowed to this backend."""
    max_queue: int = Field(default=64, ge=0)
    """Requests allowed to wait for an in-flight slot; beyond that they get 429 at once."""
    queue_timeout_s: float = Field(default=0.5, ge=0)
    """Longest wait for an in-flight slot before 429."""
    pool_size: int = Field(default=100, ge=1)
    """Connections in the pooled HTTP client (REST protocol)."""


class TorchServeSettings(BackendSettings):
    """TorchServe: token auth from its key file."""

    key_file: Path | None = None
    """TorchServe's key file (inference key sent as Bearer; re-read when TorchServe rejects it). None: no auth."""
    management_url: str | None = None
    """TorchServe's management API, used only for health (describe-model: is a worker READY?), never exposed.
    None: health by a batch-of-1 probe inference instead (costly for big models on small machines)."""
    version_format: str = "{version}.0"
    """How a v2 model version maps to a TorchServe archive version (`make export` writes '<v>.0'; TF says <v>)."""


class TFServingSettings(BackendSettings):
    """TF Serving: no auth; signature name for Predict and metadata."""

    rest_url: str = f"http://127.0.0.1:{CONTRACT.tf_rest}"
    grpc_target: str = f"127.0.0.1:{CONTRACT.tf_grpc}"
    signature_name: str = "serving_default"
    """SignatureDef used for Predict and read for metadata."""


class BackendsSettings(_Section):
    """Both serving stacks."""

    torchserve: TorchServeSettings = Field(default_factory=TorchServeSettings)
    """TorchServe connection settings."""
    tfserving: TFServingSettings = Field(default_factory=TFServingSettings)
    """TF Serving connection settings."""


class LimitsSettings(_Section):
    """Protection for the gateway: request size limits and the 429 hint."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest request body accepted (413 before reading more)."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest total size of request headers accepted (431 beyond it)."""
    retry_after_s: int = Field(default=1, ge=0)
    """Retry-After sent with 429."""


class AuthSettings(_Section):
    """Ingress API keys and who may read /metrics."""

    api_keys: list[SecretStr] = Field(default_factory=list)
    """Accepted ingress API keys (Bearer); empty together with api_key_file means no auth."""
    api_key_file: Path | None = None
    """File with one accepted API key per line."""
    metrics_public: bool | None = None
    """Whether /metrics stays open when API keys are configured (None: only when the gateway is on loopback)."""


class HealthSettings(_Section):
    """Active health checks of every (model, backend)."""

    interval_s: float = Field(default=2.0, gt=0)
    """Period of active backend health checks; also a 503's Retry-After (an open circuit sends its cool-down)."""
    failures: int = Field(default=3, ge=1)
    """Consecutive failed probes before a model stops being routed to a backend (one slow probe is not an outage)."""


class ShadowSettings(_Section):
    """The shadow policy's mirror: queue, workers, and what counts as a match."""

    queue_size: int = Field(default=64, ge=1)
    """Mirrored requests waiting for the shadow worker; more are dropped and counted."""
    workers: int = Field(default=2, ge=1)
    """Concurrent mirrored requests."""
    tolerance: float = Field(default=1e-3, ge=0)
    """Largest absolute output difference that still counts as a match."""


class BreakerSettings(_Section):
    """Per-backend circuit breakers."""

    failures: int = Field(default=5, ge=1)
    """Consecutive failures that open a backend's circuit."""
    cooldown_s: float = Field(default=5.0, gt=0)
    """Time an open circuit waits before a half-open probe."""


LEGACY_LIMITS: dict[str, tuple[str, str]] = {
    "api_keys": ("auth", "api_keys"),
    "api_key_file": ("auth", "api_key_file"),
    "metrics_public": ("auth", "metrics_public"),
    "health_interval_s": ("health", "interval_s"),
    "health_failures": ("health", "failures"),
    "shadow_queue_size": ("shadow", "queue_size"),
    "shadow_workers": ("shadow", "workers"),
    "shadow_tolerance": ("shadow", "tolerance"),
    "breaker_failures": ("breaker", "failures"),
    "breaker_cooldown_s": ("breaker", "cooldown_s"),
}
"""`limits.<old>` (e.g. TWINSERVE_LIMITS__API_KEYS) -> (section, field) where it lives now; the old names still work."""


SECTIONS: dict[str, type[_Section]] = {
    "auth": AuthSettings,
    "health": HealthSettings,
    "shadow": ShadowSettings,
    "breaker": BreakerSettings,
}


def move_legacy_limits(data: Any) -> Any:
    """Move the former `limits` keys into their sections; a value under the new name wins over the old one."""
    limits = data.get("limits") if isinstance(data, dict) else None
    if not isinstance(limits, dict) or not set(limits) & set(LEGACY_LIMITS):
        return data
    data, limits = dict(data), dict(limits)
    for old in set(limits) & set(LEGACY_LIMITS):
        value = limits.pop(old)
        section, name = LEGACY_LIMITS[old]
        target = data.get(section) or {}
        target = target.model_dump(exclude_unset=True) if isinstance(target, BaseModel) else dict(target)
        annotation = SECTIONS[section].model_fields[name].annotation
        if isinstance(value, str) and get_origin(annotation) in (list, dict):
            value = json.loads(value)  # what the env source does for a complex field it knows by its new name
        target.setdefault(name, value)
        data[section] = target
    data["limits"] = limits
    return data


class TelemetrySettings(_Section):
    """Logs and metrics."""

    log_level: str = "INFO"
    """Root log level of the gateway loggers."""
    log_json: bool = True
    """Structured JSON log lines (else plain text)."""
    metrics_multiproc_dir: Path | None = None
    """Prometheus multiprocess directory; set by `python -m gateway` when running several workers."""


class ServerSettings(_Section):
    """Listening sockets and process model (used by `python -m gateway`)."""

    host: str = "127.0.0.1"
    """Interface for REST and gRPC; beyond loopback `python -m gateway` needs API keys or allow_unauthenticated."""
    published_host: str | None = None
    """Where clients reach the ports if not `host` (a container binding 0.0.0.0, published on 127.0.0.1)."""
    allow_unauthenticated: bool = False
    """Serve beyond loopback without API keys anyway (inference and /metrics open to whoever reaches it)."""
    port: int = CONTRACT.gateway_rest
    """REST port."""
    grpc_port: int | None = CONTRACT.gateway_grpc
    """gRPC port (0: any free port; None, or `none` in the environment: no gRPC server)."""
    workers: int = Field(default=1, ge=1)
    """Worker processes; each runs REST and gRPC (gRPC shares the port through SO_REUSEPORT)."""
    drain_delay_s: float = Field(default=1.0, ge=0)
    """On SIGTERM, time readiness reports 503 while requests are still served (load balancers stop sending)."""
    graceful_timeout_s: float = Field(default=10.0, ge=0)
    """After the drain delay, time given to in-flight requests (REST, then gRPC) before they are cut."""


class Settings(BaseSettings):
    """All gateway settings."""

    model_config = SettingsConfigDict(
        env_prefix=gateway_env.PREFIX,
        env_nested_delimiter=gateway_env.DELIMITER,
        extra="forbid",
        env_parse_none_str=gateway_env.NONE,
    )

    routes_file: Path | None = DEFAULT_ROUTES_FILE
    """YAML file with the `routes` section (None: routes only from env/kwargs)."""
    registry_root: Path | None = None
    """Folder holding registered models (artifacts/registry/*.json, models.d/*/model.json): each is routed by name,
    pinned to TorchServe, unless the routes file names it (None: no registered models)."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """Sockets and processes."""
    backends: BackendsSettings = Field(default_factory=BackendsSettings)
    """Serving stacks."""
    routes: RoutesSettings = Field(default_factory=RoutesSettings)
    """Per-model routing."""
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    """Request size limits and the 429 hint."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Ingress API keys and /metrics access."""
    health: HealthSettings = Field(default_factory=HealthSettings)
    """Active health checks."""
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)
    """The shadow mirror."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    """Circuit breakers."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """Logs and metrics."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_limits(cls, data: Any) -> Any:
        return move_legacy_limits(data)

    @field_validator("routes", mode="after")
    @classmethod
    def _known_models_only(cls, routes: RoutesSettings) -> RoutesSettings:
        for name in routes.models:
            if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
                raise ValueError(f"model name {name!r} must be letters, digits, '_', '-' or '.'")
        return routes

    @model_validator(mode="after")
    def _routes_use_enabled_backends(self) -> Settings:
        enabled = {b for b in BACKENDS if getattr(self.backends, b).enabled}
        for name, route in self.routes.models.items():
            if route.backend not in enabled:
                raise ValueError(f"route {name!r} uses backend {route.backend!r}, which is disabled")
            if route.policy in ("shadow", "failover") and len(enabled) < 2:
                raise ValueError(f"route {name!r}: policy {route.policy!r} needs both backends enabled")
            for backend in set(route.endpoints) - enabled:  # an override nobody would read
                raise ValueError(f"route {name!r} has an endpoint for backend {backend!r}, which is disabled")
        return self

    def api_keys(self) -> list[str]:
        """Accepted ingress keys from the setting and the key file (empty: auth off)."""
        keys = [k.get_secret_value() for k in self.auth.api_keys]
        if self.auth.api_key_file is not None:
            lines = self.auth.api_key_file.read_text().splitlines()
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init kwargs over env over the routes YAML file."""
        return init_settings, env_settings, _RoutesFileSource(settings_cls, init_settings, env_settings)


class _RoutesFileSource(PydanticBaseSettingsSource):
    """Reads the `routes` section from the YAML file named by `routes_file` (kwarg, env, or default)."""

    def __init__(self, settings_cls: type[BaseSettings], *higher: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._higher = higher

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path: Any = DEFAULT_ROUTES_FILE
        root: Any = None
        for source in reversed(self._higher):  # the highest source last, so it wins
            values = source()
            path = values.get("routes_file", path)
            root = values.get("registry_root", root)
        models = registered.routes(Path(root)) if root not in (None, "", "none", "None") else {}
        if path in (None, "", "none", "None"):
            return {"routes": {"models": models}} if models else {}
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict) or set(data) - {"models"}:
            raise ValueError(f"{path}: expected a mapping with one key 'models'")
        models.update(data.get("models") or {})  # the routes file's route replaces a registered model's
        return {"routes": {"models": models}}
