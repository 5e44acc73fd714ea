"""A measurement aid, never imported by the gateway itself: with this directory on PYTHONPATH and GCPROBE_OUT set,
every Python process records each garbage collection (wall time, generation, duration, objects collected) and
writes them at exit to $GCPROBE_OUT.<pid> as JSON. Driven by docs/gateway-levers/gcprobe.py."""

from __future__ import annotations

import atexit
import gc
import json
import os
import time
from typing import Any

_OUT = os.environ.get("GCPROBE_OUT")
_LOG: list[tuple[float, int, float, int]] = []
_STARTED = [0.0]


def _record(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _STARTED[0] = time.perf_counter()
    else:
        _LOG.append((time.time(), info["generation"], (time.perf_counter() - _STARTED[0]) * 1e6, info["collected"]))


def _dump() -> None:
    with open(f"{_OUT}.{os.getpid()}", "w") as out:
        json.dump({"threshold": gc.get_threshold(), "collections": _LOG}, out)


if _OUT:
    gc.callbacks.append(_record)
    atexit.register(_dump)
