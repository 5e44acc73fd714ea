"""What a result was measured on: CPU, memory, GPU, package versions, the stack, and the server configs used.

Versions are read from package metadata (never by importing torch or TensorFlow); the GPU from `nvidia-smi`
when it exists. Config files are copied verbatim so a result can be reproduced without the checkout.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from loadtest.knobs import compare
from loadtest.stack import StackInfo

PACKAGES = ("torch", "tensorflow", "torchserve", "locust", "grpcio", "hdrhistogram", "numpy", "fastapi", "uvicorn")
REPO = Path(__file__).resolve().parents[1]
CONFIGS = (
    "serving/torchserve/config.properties",
    "serving/torchserve/model-config/digits.yaml",
    "serving/torchserve/model-config/resnet18.yaml",
    "serving/tfserving/models.config",
    "serving/tfserving/batching_parameters.txt",
    "gateway/routes.yaml",
)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """'name, memory, driver' per NVIDIA GPU (empty without nvidia-smi or GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers (absent ones are left out)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def configs(stack: StackInfo | None) -> dict[str, str]:
    """Text of every server config in effect: the repo's files and, natively, TorchServe's generated one."""
    out = {}
    paths = [REPO / p for p in CONFIGS]
    if stack is not None and stack.source == "native":
        paths.append(stack.run_dir / "torchserve" / "config.properties")
    for path in paths:
        if path.is_file():
            name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
            out[name] = path.read_text(encoding="utf-8", errors="replace")
    return out


def describe(stack: StackInfo | None, extra_configs: dict[str, str] | None = None) -> dict[str, Any]:
    """The `run.environment` entry of summary.json."""
    mem = psutil.virtual_memory()
    return {
        "cpu": {
            "model": cpu_model(),
            "count": os.cpu_count() or 0,
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "memory": {"total_gib": round(mem.total / 2**30, 1)},
        "gpu": gpus() or None,
        "os": platform.platform(),
        "versions": versions(),
        "stack": stack.as_dict() if stack is not None else {},
        "tf_side": (stack.tf_side if stack is not None else "unknown"),
        "configs": {**configs(stack), **(extra_configs or {})},
        # the repo's batching knobs side by side, and what no setting can make equal between the stacks
        "batching": compare(),
    }
