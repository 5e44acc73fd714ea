"""`make gpu-check`: the TorchServe handler's load-and-infer path and raw PyTorch forward on a GPU.

    python scripts/gpu_check.py [--artifacts artifacts] [--repeats 50] [--out docs/gpu.md]

Unpacks each .mar, loads it through its own handler (generic_handler.py) exactly as a TorchServe worker does
(model placed on cuda:0), and times batch 1 and 32 (p50 over --repeats, after warm-up, synchronised) for the
handler's forward and for the bare nn.Module. Needs torch with CUDA and torchserve (the handler imports it);
imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

BATCHES = (1, 32)
MODELS = ("digits", "resnet18")


class WorkerContext:
    """The parts of a TorchServe worker's context the handler reads when it loads a model."""

    def __init__(self, model_dir: Path, gpu_id: int) -> None:
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": gpu_id}
        self.manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())


def import_handler(model_dir: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"twinserve_gpu_handler_{name}", model_dir / "generic_handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def raw_forward(module: torch.nn.Module, batch: torch.Tensor) -> None:
    with torch.inference_mode():
        module(batch)


def p50_ms(run, repeats: int) -> float:
    for _ in range(5):
        run()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (this check is for GPU machines)", file=sys.stderr)
        return 2
    device = torch.device("cuda:0")
    rows = []
    for name in MODELS:
        with tempfile.TemporaryDirectory() as unpacked:
            with zipfile.ZipFile(args.artifacts / "torchserve" / f"{name}.mar") as archive:
                archive.extractall(unpacked)
            served = import_handler(Path(unpacked), name).SignatureHandler()
            served.initialize(WorkerContext(Path(unpacked), device.index or 0))
            assert next(served.module.parameters()).device.type == "cuda", "handler did not place the model on CUDA"
            [tensor] = served.inputs
            for batch in BATCHES:
                inputs = np.random.default_rng(0).standard_normal((batch, *tensor.shape[1:])).astype(np.float32)
                on_device = torch.from_numpy(inputs).to(device)
                handler_ms = p50_ms(partial(served.forward, {tensor.name: inputs}), args.repeats)
                raw_ms = p50_ms(partial(raw_forward, served.module, on_device), args.repeats)
                rows.append((name, batch, handler_ms, raw_ms))
    header = [
        f"Device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
        f"python {platform.python_version()}; p50 over {args.repeats} runs after warm-up.",
        "",
        "| model | batch | handler load-and-infer path p50 (ms, host->device->host) | raw forward p50 (ms) |",
        "|---|---|---|---|",
    ]
    table = "\n".join(header + [f"| {n} | {b} | {h:.3f} | {r:.3f} |" for n, b, h, r in rows])
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
