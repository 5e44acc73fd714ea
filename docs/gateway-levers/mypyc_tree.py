"""A copy of this tree with the gateway's hot modules compiled by mypyc: a `--variant` for the gateway benchmark.

Exports HEAD (`git archive`) into DEST, links this tree's artifacts/ into it and compiles COMPILED in place (C
extensions beside their sources, which Python then imports first). Two hot modules stay interpreted, for reasons a
shipped build would have to solve first:
- gateway/rest.py: FastAPI reads an endpoint's parameters off its signature, and a compiled function has none it
  can read, so every route answers 400 "Field required" for a `request` query parameter;
- gateway/lane.py: mypyc checks declared types at run time, and httptools' stubs declare `parse_url(...).query`
  as bytes where it is None for a URL without a query, so every request taking the lane fails (uvicorn answers
  400 "Invalid HTTP request received").

    PYTHONPATH=. python docs/gateway-levers/mypyc_tree.py /tmp/mypyc
    python -m loadtest.gatewaybench --run-dir run --out /tmp/gb --groups anchor --variant mypyc=/tmp/mypyc
    (cd /tmp/mypyc && python -m loadtest.gatewaybench --out /tmp/gb-ceiling --groups ceiling --rounds 3)

Needs a C compiler and Python's headers (both on the development VM); mypyc ships with mypy, a pinned dev tool.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPILED = [
    "gateway/fastpath.py",
    "gateway/core.py",
    "gateway/codec_tf.py",
    "gateway/codec_v2.py",
    "gateway/codec_grpc.py",
    "gateway/httpclient.py",
    "gateway/tensors.py",
    "gateway/upstream.py",
    "gateway/metadata.py",
    "gateway/telemetry.py",
    "gateway/middleware.py",
    "gateway/breaker.py",
    "gateway/limits.py",
    "gateway/routing.py",
    "gateway/deadline.py",
    "gateway/backends/base.py",
    "gateway/backends/tfserving.py",
    "gateway/backends/torchserve.py",
]

SETUP = """
from setuptools import setup
from mypyc.build import mypycify
setup(name="gateway-mypyc", packages=[], py_modules=[], ext_modules=mypycify({modules!r}, opt_level="3"))
"""


def build(dest: Path) -> None:
    """Export HEAD into `dest` and compile the hot modules there."""
    dest.mkdir(parents=True, exist_ok=False)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "artifacts").symlink_to(ROOT / "artifacts")
    (dest / "setup_mypyc.py").write_text(SETUP.format(modules=COMPILED))
    print(f"compiling {len(COMPILED)} modules in {dest} (about a minute) ...", flush=True)
    subprocess.run([sys.executable, "setup_mypyc.py", "build_ext", "--inplace"], cwd=dest, check=True)
    print(f"variant ready: --variant mypyc={dest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="a directory that does not exist yet")
    build(parser.parse_args().dest)


if __name__ == "__main__":
    main()
