"""The versioned schema of summary.json (pydantic; `python -m loadtest.report --schema` prints JSON Schema).

Bump SCHEMA_VERSION on any change that breaks a reader; additive optional fields keep the version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal["twinserve.loadtest.summary/3"] = "twinserve.loadtest.summary/3"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Strict):
    """What was measured: one framework, protocol, path and model."""

    id: str = Field(description="'<framework>-<protocol>-<path>:<model>', e.g. 'torchserve-grpc-direct:digits'")
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
    config: str | None = Field(None, description="server configuration of a batching sweep, e.g. 'ts-b8-t2000-w1'")


class Window(_Strict):
    """One interval window of the measured phase."""

    index: int
    start_s: float
    throughput_rps: float
    offered_rps: float = Field(0.0, description="requests scheduled in this window (open loop)")
    p50_ms: float | None = Field(None, description="median from the scheduled send: the drift check")
    p99_ms: float | None
    counts: dict[str, int]


class Platform(_Strict):
    """How much the machine itself stalled the generator's CPUs during the point (loadtest/stalls.py)."""

    cpus: list[int] = Field(description="CPUs the generator was pinned to and the stall meters watched")
    meter: str = Field(description="the meters' scheduling, e.g. 'SCHED_FIFO 2'")
    trusted: bool = Field(description="meters pinned at real-time priority and generator pinned: explanations count")
    stall_fraction: float = Field(description="share of the measured phase the generator's CPUs were stalled")
    longest_stall_ms: float
    late_explained: int = Field(description="late sends the stalls explain (0 unless trusted)")
    steal_pct: float = Field(0.0, description="hypervisor steal of those CPUs during the point (/proc/stat), %")


class Generator(_Strict):
    """Load-generator health during the measured phase."""

    cpu_pct: float = Field(description="highest mean CPU (% of one core) of any generator process")
    late_sends: int = 0
    late_fraction: float = 0.0
    processes: list[dict[str, float | int | str]] = []
    priority: str | None = Field(None, description="scheduling of the generator: 'SCHED_FIFO 1', 'nice -5', 'normal'")
    platform: Platform | None = Field(None, description="platform stalls and the late sends they explain")


class ServerSide(_Strict):
    """Mean time per request inside the server over the measured phase, from its own Prometheus counters."""

    source: str = Field(description="which counters, e.g. 'ts_* counters' or 'request_latency _sum/_count'")
    requests: int = Field(description="requests the server counted between the two scrapes")
    interval_s: float = Field(description="time between the two scrapes")
    server_ms: float = Field(description="mean time in the server (queue + compute)")
    queue_ms: float | None = Field(None, description="mean time queued before a worker/batch took it")
    compute_ms: float | None = Field(None, description="server_ms - queue_ms")


class Slo(_Strict):
    """The point's p99 against its SLO: a one-sided binomial test on the requests slower than the SLO."""

    slo_ms: float
    quantile: float = Field(description="the quantile bounded, 0.99")
    confidence: float = Field(description="one-sided confidence of the verdicts")
    requests: int = Field(description="measured requests (successes and failures)")
    over: int = Field(description="requests slower than the SLO from the scheduled send, failures included")
    over_from_send: int = Field(description="the same from the actual send")
    verdict: Literal["met", "breached", "undetermined"]
    verdict_from_send: Literal["met", "breached", "undetermined"]


class Outcome(_Strict):
    """What the point says about its rate (loadtest/validity.py: outcome)."""

    result: Literal["pass", "fail", "generator", "remeasure"]
    why: str


class ServiceUsage(_Strict):
    """One service's process tree over a point's measured phase (loadtest/resources.py)."""

    cpu_s: float = Field(description="CPU-seconds (user + system) of the whole tree between the readings")
    interval_s: float = Field(description="time between the first and last readings inside the measured phase")
    cpu_ms_per_request: float | None = Field(description="CPU per request of the point, at its steady rate")
    rss_peak_bytes: int = Field(description="highest RSS of the tree read during the point")


class GpuUsage(_Strict):
    """The GPUs while a point ran (NVIDIA's management library)."""

    util_pct_max: float
    memory_bytes_max: int
    devices: list[str] = []


class Point(_Strict):
    """One measurement point; INVALID points keep their reasons and never enter a headline number."""

    target: Target
    load: Load
    measured_s: float
    achieved_rps: float = Field(description="correct responses per second over the measured phase")
    counts: dict[str, int] = Field(description="sent, ok, errors, wrong, checked, late, warmup, dropped, overflow")
    error_rate: float
    late_fraction: float
    latency_ms: dict[Literal["from_schedule", "from_send"], Latency]
    spectrum_ms: list[tuple[float, float]] = Field(description="[percentile, ms] from the scheduled send")
    windows: list[Window]
    generator: Generator
    valid: bool
    reasons: list[str]
    reason_kinds: list[Literal["measurement", "generator", "server"]] = Field(
        [], description="the kind of each reason, in order: measure again / the generator's limit / the server's"
    )
    slo: Slo | None = Field(None, description="p99 against the model's SLO (None: closed loop or no SLO)")
    outcome: Outcome | None = Field(None, description="the point's word on its rate, for the rate search")
    resources: dict[str, ServiceUsage | GpuUsage | Literal["no GPU"]] = Field(
        {}, description="per service (torchserve, tfserving, gateway) its process tree's cost; `gpu`: GPU or 'no GPU'"
    )
    hlogs: list[str] = Field([], description="HdrHistogram interval logs, relative to the run directory")
    locust_csv: str | None = Field(
        None,
        description="prefix of Locust's own CSV files of this point (_stats.csv, _stats_history.csv, _failures.csv, "
        "_exceptions.csv), relative to the run directory; Locust's 2-digit percentiles, for reference only",
    )
    server: ServerSide | None = Field(None, description="server-side queue/compute, None when not scraped")
    server_timing_ms: dict[str, Latency] = Field(
        {}, description="durations the gateway reported in Server-Timing (gateway, upstream), per name"
    )


class Floor(_Strict):
    """In-process forward latency of one framework: the floor no server can beat."""

    framework: Literal["torchserve", "tfserving"]
    model: str
    batch: int
    latency_ms: Latency
    engine: str = Field(description="what ran the forward pass, e.g. 'torch 2.13.0' or 'tensorflow 2.20.0'")


class Decomposition(_Strict):
    """Where the mean latency of one target goes, in ms: disjoint parts that add up to `total_ms` together
    with the unattributed rest (client, network, HTTP/gRPC stacks); parts not measured are None.

    Means, not percentiles: means of parts add up to the mean of the whole, percentiles do not.
    """

    target: str
    rate_rps: float | None = Field(None, description="offered load of the point decomposed")
    total_ms: float = Field(description="mean latency from the actual send, as the client saw it")
    gateway_ms: float | None = Field(None, description="the gateway's own time (Server-Timing gateway - upstream)")
    upstream_ms: float | None = Field(
        None, description="gateway->server round trip outside the server's own time (network, codecs)"
    )
    queue_ms: float | None = Field(None, description="time queued in the server")
    server_ms: float | None = Field(
        None, description="time in the server not split into queue and compute (minus the floor)"
    )
    compute_ms: float | None = Field(None, description="server compute minus the floor (handler, IPC, batching)")
    floor_ms: float | None = Field(None, description="in-process forward pass (the floor), mean")


class BatchingPoint(_Strict):
    """One server batching configuration at its best valid load."""

    framework: Literal["torchserve", "tfserving"]
    model: str
    max_batch_size: int
    batch_timeout_us: int
    workers: int | None = Field(None, description="TorchServe workers (TF: num_batch_threads)")
    target: str | None = Field(None, description="target id the configuration was measured through")
    offered_rps: float | None = None
    throughput_rps: float
    p99_ms: float
    valid: bool
    reasons: list[str] = []


class Bracket(_Strict):
    """A target's capacity: at least `passed` req/s offered, not `bounded_at`, and what bounded it."""

    passed: float | None = Field(description="highest offered rate that passed (None: none did)")
    bounded_at: float | None = Field(description="lowest offered rate above it that did not (None: none tried)")
    bound: Literal["slo", "server", "generator", "unresolved", "not reached"]
    why: str = Field(description="the deciding point's reason")


class IndependentTool(_Strict):
    """An independent load tool's run at the same rate against the same target."""

    tool: str
    rate_rps: float
    workers: int
    requests: int
    non_200: int
    achieved_rps: float
    p50: float | None
    p99: float | None
    command: str


class BeyondCheck(IndependentTool):
    """The independent tool where the harness's search stopped short of the server (generator, noise, end)."""

    sustained: bool = Field(description="every answer a 200 and p99 within the SLO: the server sustains this rate")


class CrossCheck(_Strict):
    """The harness's p99 at a stack's capacity beside an independent tool's at the same rate."""

    target: str
    rate_rps: float
    harness: dict[str, float | None]
    independent: IndependentTool
    p99_disagreement: float | None = Field(description="|harness p99 - tool p99| / tool p99")
    flagged: bool = Field(description="disagreement over 20 % (or no p99 to compare)")
    beyond: BeyondCheck | None = Field(
        None, description="the tool at the rate where the harness stopped for a reason not the server's"
    )


class StackCost(_Strict):
    """What one service costs to run over the whole bench (summary.json `resources.<stack>`)."""

    rss_idle_bytes: int | None = Field(description="median RSS read between targets, after the first warmed it")
    rss_peak_bytes: int | None = Field(description="highest RSS read during any point")
    cpu_seconds_per_request: float | None = Field(description="at the highest passing point (direct; gateway path)")
    requests_per_core_s: float | None = Field(description="1 / cpu_seconds_per_request: what one core would serve")
    at_point: dict[str, str | float] | None = Field(description="the point CPU per request was read at")
    cold_start_s: float | None = Field(None, description="median, process start to first correct inference")
    cold_start_runs_s: list[float] = []
    model_load_s: dict[str, float] = Field({}, description="per model, from the server's own metrics")
    artifact_bytes: dict[str, int] = Field({}, description="per model, the artifact this stack serves")
    stand_in: bool = Field(False, description="True for the TF side when it is the stand-in")
    image_bytes: int | None = Field(None, description="the service's container image, when containers served")


class Resources(_Strict):
    """The cost side of the comparison."""

    torchserve: StackCost | None = None
    tfserving: StackCost | None = None
    gateway: StackCost | None = None
    gpu: GpuUsage | Literal["no GPU"] = "no GPU"


class Run(_Strict):
    """Where, when and how the run happened."""

    id: str
    started_at: str
    mode: Literal["default", "quick", "full", "synthetic"]
    command: str
    host: dict[str, str | int | float]
    criteria: dict[str, float | int]
    slo_p99_ms: float = 25.0
    slo_p99_ms_by_model: dict[str, float] = Field({}, description="per-model p99 SLO (default slo_p99_ms)")
    stack: Literal["native", "compose"] = Field("native", description="native processes or compose containers")
    tfserving_stand_in: bool = Field(description="True when the TF Serving side is twinserve's stand-in")
    notes: list[str] = []
    environment: dict[str, Any] = Field(
        {}, description="CPU, GPU, versions, stack (ports, real vs stand-in) and the server configs used"
    )


class Summary(_Strict):
    """summary.json: everything the report shows, nothing it has to recompute from raw samples."""

    schema_version: Literal["twinserve.loadtest.summary/3"] = SCHEMA_VERSION
    run: Run
    points: list[Point]
    floor: list[Floor] = []
    decomposition: list[Decomposition] = []
    batching: list[BatchingPoint] = []
    capacity: dict[str, Bracket] = Field({}, description="per target id with open-loop points: its capacity bracket")
    crosscheck: list[CrossCheck] = Field([], description="independent tool at each stack's capacity (REST direct)")
    resources: Resources | None = Field(None, description="memory, CPU per request, cold start, load, artifact size")
