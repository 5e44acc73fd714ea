"""The versioned schema of summary.json (pydantic; `python -m loadtest.report --schema` prints JSON Schema).

Bump SCHEMA_VERSION on any change that breaks a reader; additive optional fields keep the version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal["twinserve.loadtest.summary/1"] = "twinserve.loadtest.summary/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Strict):
    """What was measured: one framework, protocol, path and model."""

    id: str = Field(
        description="'<framework>-<protocol>-<path>:<model>', e.g. 'torchserve-grpc-direct:digits'"
    )
    framework: Literal["torchserve", "tfserving"]
    protocol: Literal["rest", "grpc"]
    path: Literal["direct", "gateway"]
    model: str


class Latency(_Strict):
    """Percentiles of one histogram, in milliseconds (None when nothing was recorded)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    p99_9: float | None
    mean: float | None
    max: float | None


class Load(_Strict):
    """How the point was driven."""

    mode: Literal["open", "closed"]
    schedule: Literal["constant", "poisson"] | None = None
    rate_rps: float | None = Field(None, description="offered request rate (open loop)")
    concurrency: int | None = Field(None, description="outstanding requests (closed loop)")
    batch: int = Field(1, description="instances per request")
    seed: int | None = None


class Window(_Strict):
    """One interval window of the measured phase."""

    index: int
    start_s: float
    throughput_rps: float
    offered_rps: float = Field(0.0, description="requests scheduled in this window (open loop)")
    p99_ms: float | None
    counts: dict[str, int]


class Generator(_Strict):
    """Load-generator health during the measured phase."""

    cpu_pct: float = Field(description="highest mean CPU (% of one core) of any generator process")
    late_sends: int = 0
    late_fraction: float = 0.0
    processes: list[dict[str, float | int | str]] = []


class Point(_Strict):
    """One measurement point; INVALID points keep their reasons and never enter a headline number."""

    target: Target
    load: Load
    measured_s: float
    achieved_rps: float = Field(description="correct responses per second over the measured phase")
    counts: dict[str, int] = Field(
        description="sent, ok, errors, wrong, checked, late, warmup, dropped, overflow"
    )
    error_rate: float
    late_fraction: float
    latency_ms: dict[Literal["from_schedule", "from_send"], Latency]
    spectrum_ms: list[tuple[float, float]] = Field(description="[percentile, ms] from the scheduled send")
    windows: list[Window]
    generator: Generator
    valid: bool
    reasons: list[str]
    hlogs: list[str] = Field([], description="HdrHistogram interval logs, relative to the run directory")


class Floor(_Strict):
    """In-process forward latency of one framework: the floor no server can beat."""

    framework: Literal["torchserve", "tfserving"]
    model: str
    batch: int
    latency_ms: Latency
    engine: str = Field(description="what ran the forward pass, e.g. 'torch 2.13.0' or 'tensorflow 2.20.0'")


class Decomposition(_Strict):
    """Where the p50 of one target goes, in milliseconds; parts not measured are None."""

    target: str
    total_ms: float
    gateway_ms: float | None = None
    upstream_ms: float | None = Field(
        None, description="network + client overhead between gateway and server"
    )
    queue_ms: float | None = None
    compute_ms: float | None = None
    floor_ms: float | None = None


class BatchingPoint(_Strict):
    """One server batching configuration at its best valid load."""

    framework: Literal["torchserve", "tfserving"]
    model: str
    max_batch_size: int
    batch_timeout_us: int
    throughput_rps: float
    p99_ms: float
    valid: bool
    reasons: list[str] = []


class Run(_Strict):
    """Where, when and how the run happened."""

    id: str
    started_at: str
    mode: Literal["quick", "full", "synthetic"]
    command: str
    host: dict[str, str | int | float]
    criteria: dict[str, float | int]
    slo_p99_ms: float = 25.0
    tfserving_stand_in: bool = Field(description="True when the TF Serving side is the native stand-in")
    notes: list[str] = []


class Summary(_Strict):
    """summary.json: everything the report shows, nothing it has to recompute from raw samples."""

    schema_version: Literal["twinserve.loadtest.summary/1"] = SCHEMA_VERSION
    run: Run
    points: list[Point]
    floor: list[Floor] = []
    decomposition: list[Decomposition] = []
    batching: list[BatchingPoint] = []
