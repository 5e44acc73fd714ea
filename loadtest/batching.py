"""`make bench-batching`: server batching and workers, a few configs per framework -> latency-throughput front.

Each configuration restarts one server through the supervisor's Stack API in a private run dir on free
ports; artifacts/ and serving/ are never modified:
  TorchServe  a temporary model store holding copies of the .mar files whose packed model-config yaml
              (batchSize, maxBatchDelay, minWorkers/maxWorkers) is rewritten; `--model-store` points there.
  TF side     a temporary batching parameters file passed as `--batching_parameters_file`.
Every configuration runs the same open-loop rates; its best VALID point within the SLO (else its best
VALID point) becomes one `batching[]` entry; the report draws each framework's Pareto front.
  python -m loadtest.batching --quick      # 2 configs per framework, 2 rates, digits (~3 min)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from rich.progress import Progress

from loadtest.plan import scraper_for
from loadtest.pointrun import Harness, console, run_point
from loadtest.search import passes
from loadtest.spec import DEFAULT_TIMEOUT_S
from loadtest.stack import from_state
from loadtest.validity import DEFAULT, QUICK


@dataclass(frozen=True)
class Config:
    """One server batching configuration (TF: workers = num_batch_threads)."""

    framework: str
    max_batch: int
    timeout_us: int
    workers: int = 1

    @property
    def name(self) -> str:
        """'ts-b8-t2000-w1'."""
        fw = "ts" if self.framework == "torchserve" else "tf"
        return f"{fw}-b{self.max_batch}-t{self.timeout_us}-w{self.workers}"


CONFIGS = [
    Config("torchserve", 1, 0),
    Config("torchserve", 8, 2000),
    Config("torchserve", 16, 5000),
    Config("torchserve", 1, 0, 2),
    Config("tfserving", 1, 0),
    Config("tfserving", 8, 1000),
    Config("tfserving", 32, 2000, 2),
    Config("tfserving", 32, 10000, 2),
]
QUICK_CONFIGS = [CONFIGS[0], CONFIGS[2], CONFIGS[4], CONFIGS[6]]


def torchserve_store(src: Path, cfg: Config, dst: Path) -> Path:
    """Copies of every .mar in `src` with the packed model-config yaml rewritten for `cfg`."""
    dst.mkdir(parents=True, exist_ok=True)
    for mar in sorted(src.glob("*.mar")):
        with zipfile.ZipFile(mar) as zin, zipfile.ZipFile(dst / mar.name, "w", zipfile.ZIP_STORED) as zout:
            manifest = yaml.safe_load(zin.read("MAR-INF/MANIFEST.json"))  # JSON is YAML
            config_file = manifest["model"].get("configFile")
            for item in zin.infolist():
                data = zin.read(item)
                if item.filename == config_file:
                    doc = yaml.safe_load(data) or {}
                    doc |= {
                        "batchSize": cfg.max_batch,
                        "maxBatchDelay": max(0, cfg.timeout_us // 1000),
                        "minWorkers": cfg.workers,
                        "maxWorkers": cfg.workers,
                    }
                    data = yaml.safe_dump(doc).encode()
                zout.writestr(item, data)
    return dst


def tf_batching_file(cfg: Config, path: Path) -> Path:
    """A text BatchingParameters file for `cfg` (powers of two up to max_batch as allowed sizes)."""
    sizes = [1 << i for i in range(cfg.max_batch.bit_length()) if 1 << i <= cfg.max_batch]
    if sizes[-1] != cfg.max_batch:
        sizes.append(cfg.max_batch)
    lines = [
        f"max_batch_size {{ value: {cfg.max_batch} }}",
        f"batch_timeout_micros {{ value: {cfg.timeout_us} }}",
        f"num_batch_threads {{ value: {cfg.workers} }}",
        "max_enqueued_batches { value: 64 }",
        *(f"allowed_batch_sizes: {s}" for s in sizes),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def launch_options(cfg: Config, work: Path, artifacts: Path) -> dict[str, dict[str, str]]:
    """`Stack.up` options that launch the server under test on `cfg`: a repacked model store (TorchServe) or a
    batching parameters file (the TF side)."""
    if cfg.framework == "torchserve":
        return {"torchserve": {"model_store": str(torchserve_store(artifacts / "torchserve", cfg, work / "store"))}}
    return {"tfserving": {"batching_parameters_file": str(tf_batching_file(cfg, work / "batching.txt"))}}


def measure(
    cfg: Config, args: argparse.Namespace, out: Path, progress: Progress
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
    """Start the server on `cfg`, run the rates, stop it; returns (batching entry, points, what served the TF
    side: 'real' or 'standin')."""
    from supervisor import Ports, Stack

    work = Path(tempfile.mkdtemp(prefix="ltb-"))  # short: TorchServe's socket paths are length-capped
    stack = Stack(work / "run", args.artifacts, Ports.ephemeral())
    points: list[dict[str, Any]] = []
    try:
        with console.status(f"{cfg.name}: starting {cfg.framework}"):
            stack.up([cfg.framework], timeout=300, options=launch_options(cfg, work, args.artifacts))
        info = from_state(work / "run" / "state.json")
        harness = Harness(args.artifacts, info.run_dir, args.timeout)
        t = info.target(cfg.framework, args.protocol, "direct", args.model)
        crit = QUICK if args.quick else DEFAULT
        for rate in args.rates:
            load = {"mode": "open", "schedule": "poisson", "rate_rps": rate, "batch": 1, "seed": 1}
            p = run_point(t, load, crit, out, harness, progress, scraper_for(info, t), tag=cfg.name, slo_ms=args.slo)
            if p is not None:
                p["load"]["config"] = cfg.name
                points.append(p)
    finally:
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    return entry(cfg, args.model, points), points, info.tf_side


def entry(cfg: Config, model: str, points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The config's `batching[]` entry: its best VALID point within the SLO, else its best point at all."""
    if not points:
        return None
    ok = [p for p in points if passes(p)] or [p for p in points if p["valid"]] or points
    best = max(ok, key=lambda p: p["achieved_rps"])
    return {
        "framework": cfg.framework,
        "model": model,
        "max_batch_size": cfg.max_batch,
        "batch_timeout_us": cfg.timeout_us,
        "workers": cfg.workers,
        "target": best["target"]["id"],
        "offered_rps": best["load"]["rate_rps"],
        "throughput_rps": best["achieved_rps"],
        "p99_ms": best["latency_ms"]["from_schedule"]["p99"] or 0.0,
        "valid": best["valid"] and passes(best),
        "reasons": best["reasons"] or ([] if passes(best) else [best["outcome"]["why"]]),
    }


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Every configuration in turn; returns the `batching[]` entries, every point, and what served the TF side."""
    out = args.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    entries, points = [], []
    tf_side = "standin"
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    with Progress(console=console, transient=False) as progress:
        for cfg in configs:
            e, mine, side = measure(cfg, args, out, progress)
            points.extend(mine)
            tf_side = side  # the run block says what served the TF side, never assumes it
            if e is not None:
                entries.append(e)
                verdict = "" if e["valid"] else f" [red]INVALID[/red] ({'; '.join(e['reasons'])})"
                console.print(f"{cfg.name}: {e['throughput_rps']:.0f} req/s, p99 {e['p99_ms']:.1f} ms{verdict}")
    return entries, points, tf_side


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: writes summary.json + report with `batching[]` and every point."""
    from loadtest.report import write_report
    from loadtest.report.schema import SCHEMA_VERSION
    from loadtest.runblock import run_block

    ap = argparse.ArgumentParser(prog="python -m loadtest.batching", description=__doc__)
    ap.add_argument("--model", default="digits")
    ap.add_argument("--protocol", choices=["rest", "grpc"], default="rest")
    ap.add_argument("--rates", default="", help="default 50,100,200 (quick: 40,120)")
    ap.add_argument("--slo", type=float, default=25.0, help="p99 SLO in ms")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    args = ap.parse_args(argv)
    args.rates = [float(r) for r in (args.rates or ("40,120" if args.quick else "50,100,200")).split(",")]
    started = datetime.now(UTC)
    args.out = args.out or Path("results") / (started.strftime("%Y%m%d-%H%M%S") + "-batching")
    entries, points, tf_side = run(args)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "points": points,
        "batching": entries,
        "run": run_block(
            args.out.name,
            started,
            mode="quick" if args.quick else "default",
            command="python -m loadtest.batching " + " ".join(argv or []),
            criteria=QUICK if args.quick else DEFAULT,
            slo_ms_by_model={args.model: args.slo},
            stack=None,
            stand_in=tf_side != "real",
            notes=["Batching sweep: each point's server ran the configuration named in its load.config."],
        ),
    }
    paths = write_report(summary, args.out)
    console.print(f"{len(entries)} configurations -> {paths['html']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
