"""Every gateway module imports without torch or tensorflow (a gateway image carries neither)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import gateway

FORBIDDEN = ("torch", "tensorflow", "tritonclient", "tensorflow_serving")


def test_no_gateway_module_imports_torch_or_tensorflow() -> None:
    names = sorted(m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.") if m.name != "gateway.__main__")
    assert {"gateway.codec_grpc", "gateway.codec_tf", "gateway.middleware", "gateway.deadline"} <= set(names)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    repo = Path(gateway.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=repo)
