#!/usr/bin/env bash
# `make gpu-check`: scripts/gpu_check.py in its own venv with a CUDA build of torch (the main venv's is CPU-only).
# The venv is made on the first run, and only on a machine with an NVIDIA GPU; without one: exit 2, nothing made.
# Env: ARTIFACTS (artifacts), GPU_VENV (.venv-gpu), PYTHON (python3, makes the venv), TORCH_CUDA (cu128: the
#      CUDA flavour of PyTorch's wheel index), NVIDIA_SMI (nvidia-smi; tests point it at a fake).
set -euo pipefail
cd "$(dirname "$0")/.."
ARTIFACTS=${ARTIFACTS:-artifacts}
GPU_VENV=${GPU_VENV:-.venv-gpu}
PYTHON=${PYTHON:-python3}
TORCH_CUDA=${TORCH_CUDA:-cu128}
NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}

if ! command -v "$NVIDIA_SMI" >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here ($NVIDIA_SMI not found); it measures on a CUDA machine, nothing to do" >&2
  exit 2
fi
if ! "$NVIDIA_SMI" -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu-check: no NVIDIA GPU here ($NVIDIA_SMI -L lists none); it measures on a CUDA machine, nothing to do" >&2
  exit 2
fi

stamp=$GPU_VENV/.installed-$TORCH_CUDA
if [ ! -f "$stamp" ]; then
  echo "gpu-check: making $GPU_VENV with torch for $TORCH_CUDA (once; the main .venv keeps its CPU torch)"
  [ -x "$GPU_VENV/bin/python" ] || "$PYTHON" -m venv "$GPU_VENV"
  # PIP_CONFIG_FILE=/dev/null: a local find-links of CPU wheels must not satisfy torch here.
  PIP_CONFIG_FILE=/dev/null "$GPU_VENV/bin/python" -m pip install --quiet \
    --index-url "https://download.pytorch.org/whl/$TORCH_CUDA" --extra-index-url https://pypi.org/simple \
    -r requirements/gpu.txt
  if ! "$GPU_VENV/bin/python" -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)'; then
    echo "gpu-check: the torch installed in $GPU_VENV is not a CUDA build (index $TORCH_CUDA)" >&2
    exit 1
  fi
  touch "$stamp"
fi
exec "$GPU_VENV/bin/python" scripts/gpu_check.py --artifacts "$ARTIFACTS" --out docs/gpu.md
