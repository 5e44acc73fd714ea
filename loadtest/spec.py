"""One point's settings, frozen: written once by whoever plans the point, read by Locust; the one home of defaults.

The bench (loadtest/run.py, loadtest/batching.py) builds a `PointSpec` per point from the target, the load and
the criteria of that attempt; `argv()` renders it as the locustfile's `--lt-*` options, and inside Locust
`from_options()` reads exactly those back. The option names, types and defaults are derived from this class's
fields (`OPTIONS`), so a hand-written `locust -f loadtest/locustfile.py --lt-...` command, compose's and the
bench's all mean the same thing. The web UI builds one per ticked target from its form (loadtest/ui/session.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract import tskeys
from loadtest.targets import Target, parse_target
from loadtest.validity import DEFAULT, Criteria

DEFAULT_TIMEOUT_S = 10.0
"""Per-request timeout: a slower answer counts as an error."""
DEFAULT_RATE = 50.0


@dataclass(frozen=True)
class PointSpec:
    """Everything one Locust run needs to drive, check and record one point."""

    target: Target
    mode: str = field(default="open", metadata={"help": "open: requests on a schedule; closed: fixed concurrency"})
    schedule: str = field(default="poisson", metadata={"help": "open-loop arrivals"})
    rate: float = field(default=DEFAULT_RATE, metadata={"help": "offered req/s (open loop, all processes)"})
    concurrency: int = field(default=1, metadata={"help": "outstanding requests (closed loop)"})
    seed: int = field(default=1, metadata={"help": "of the Poisson schedule"})
    warmup_s: float = field(default=DEFAULT.warmup_s, metadata={"help": "seconds sent but excluded"})
    duration_s: float = field(default=DEFAULT.min_duration_s, metadata={"help": "measured seconds after warm-up"})
    window_s: float = field(default=DEFAULT.window_s, metadata={"help": "stability and drift window, seconds"})
    batch: int = field(default=1, metadata={"help": "instances per request"})
    timeout_s: float = field(default=DEFAULT_TIMEOUT_S, metadata={"help": "per-request timeout, seconds"})
    artifacts: Path = field(
        default=Path("artifacts"), metadata={"help": "holds samples/<model>.npz, the reference answers"}
    )
    run_dir: Path = field(default=Path("run"), metadata={"help": "supervisor run dir (TorchServe's key file)"})
    out: Path | None = field(default=None, metadata={"help": "where the master writes the merged snapshot (JSON)"})

    @property
    def key_file(self) -> Path:
        """TorchServe's key file under the run dir."""
        return tskeys.key_file_in(self.run_dir)

    @classmethod
    def of(
        cls,
        t: Target,
        load: dict[str, Any],
        criteria: Criteria,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        artifacts: Path = Path("artifacts"),
        run_dir: Path = Path("run"),
        out: Path | None = None,
    ) -> PointSpec:
        """The spec of a point with summary.json's `load` block, measured as long as `criteria` want."""
        closed = load["mode"] == "closed"
        return cls(
            target=t,
            mode=load["mode"],
            schedule=load.get("schedule", "poisson"),
            rate=DEFAULT_RATE if closed else float(load["rate_rps"]),
            concurrency=int(load.get("concurrency", 1)),
            seed=int(load.get("seed", 1)),
            warmup_s=criteria.warmup_s,
            duration_s=criteria.measured_s(None if closed else load["rate_rps"]),
            window_s=criteria.window_s,
            batch=int(load.get("batch", 1)),
            timeout_s=timeout_s,
            artifacts=artifacts,
            run_dir=run_dir,
            out=out,
        )

    def argv(self) -> list[str]:
        """The `--lt-*` options that `from_options` reads back into this spec (only what the mode uses)."""
        skip = {"rate", "schedule", "seed"} if self.mode == "closed" else {"concurrency"}
        out: list[str] = []
        for name in OPTIONS:
            value = getattr(self, name)
            if name in skip or value is None:
                continue
            out += [_flag(name), value.spec if isinstance(value, Target) else str(value)]
        return out

    @classmethod
    def from_options(cls, o: argparse.Namespace) -> PointSpec:
        """Read the parsed `--lt-*` options (registered by `add_options`)."""
        values: dict[str, Any] = {name: getattr(o, _dest(name)) for name in OPTIONS}
        values["target"] = parse_target(values["target"])
        values["out"] = Path(values["out"]) if values["out"] else None
        values["artifacts"], values["run_dir"] = Path(values["artifacts"]), Path(values["run_dir"])
        return cls(**values)


_FIELDS = {f.name: f for f in dataclasses.fields(PointSpec)}
_BY_MODE = ("schedule", "rate", "seed", "concurrency")
OPTIONS = ["target", *[n for n in _FIELDS if n not in ("target", *_BY_MODE)], *_BY_MODE]
"""Every field is an option, `--lt-<name>` (warmup_s: --lt-warmup); the load of one mode comes last."""
_CHOICES = {"mode": ["open", "closed"], "schedule": ["poisson", "constant"]}
_RENAMED = {"warmup_s": "warmup", "duration_s": "duration", "window_s": "window", "timeout_s": "timeout"}


def _flag(name: str) -> str:
    return "--lt-" + _RENAMED.get(name, name).replace("_", "-")


def _dest(name: str) -> str:
    return _flag(name)[2:].replace("-", "_")


def add_options(parser: argparse.ArgumentParser) -> None:
    """Register the `--lt-*` options (Locust passes its parser to `init_command_line_parser`), defaults from
    `PointSpec`."""
    for name in OPTIONS:
        f = _FIELDS[name]
        default = "torchserve-rest-direct:digits" if name == "target" else f.default
        kind = {int: int, float: float}.get(type(default), str)
        parser.add_argument(
            _flag(name),
            type=kind,
            default="" if default is None else default if kind is not str else str(default),
            choices=_CHOICES.get(name),
            help=f.metadata.get("help", "the target id (<framework>-<protocol>-<path>:<model>[@port])"),
        )
