#!/usr/bin/env bash
# Issue 10, item 7 (partial): `make bench` run inside the compose network, from the loadtest image, with Locust
# as a master and N worker processes (`--processes N`), writing the same validated summary.json and report as
# the native bench into results/in-compose/<run>. The stack must be up (make up STACK=compose). The floor is not
# measured in the image (no torch, no TensorFlow there): pass the host's floor.json with FLOOR=path.
# Usage: scripts/bench-in-compose.sh [loadtest.run args...]   Env: PROCESSES (2), FLOOR, GPU, TF_SIDE.
# Not yet: the master and workers as separate containers (the compose locust-worker service).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DOCKER_HOST:-}" ] && [ -f .engine/env ]; then
  # shellcheck disable=SC1091
  . .engine/env
fi
# shellcheck disable=SC1090
. <(bash scripts/images.sh args | sed 's/^/export /')
out=results/in-compose/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out" && chmod 0777 "$(dirname "$out")" "$out"  # written by the image's uid 10001
mounts=(-v "$PWD/artifacts/samples:/app/artifacts/samples:ro" -v twinserve_torchserve-keys:/app/run/torchserve:ro
  -v "$PWD/results/in-compose:/app/results/in-compose")
floor=(--no-floor)
if [ -n "${FLOOR:-}" ]; then
  mounts+=(-v "$(realpath "$FLOOR"):/app/floor.json:ro")
  floor=(--floor /app/floor.json)
fi
# shellcheck disable=SC2046
docker compose $(bash scripts/compose.sh files) run --rm --no-deps "${mounts[@]}" --entrypoint python locust-master \
  -m loadtest.run --stack compose --processes "${PROCESSES:-2}" "${floor[@]}" --out "$out" "$@"
echo "bench-in-compose: $out"
