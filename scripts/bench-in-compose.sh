#!/usr/bin/env bash
# Issue 10, item 7 (partial): `make bench` inside the compose network, from the loadtest image (the compose
# service `bench`, profile bench), with Locust as a master and N worker processes (`--processes N`). It writes
# the same validated summary.json and report as the native bench, into results/in-compose/<run>. The stack must
# be up (make up STACK=compose). The image has no torch or TensorFlow, so the floor is not measured there:
# pass the host's floor.json with FLOOR=path.
# Usage: scripts/bench-in-compose.sh [loadtest.run args; default --quick]   Env: PROCESSES (1), FLOOR, GPU, TF_SIDE.
# Separate master and worker containers serve the web UI instead (compose's locust-master and locust-worker: pick
# targets at http://127.0.0.1:8089; each run is saved in results/in-compose/<time>-ui). This script is the headless
# rate search of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DOCKER_HOST:-}" ] && [ -f .engine/env ]; then
  # shellcheck disable=SC1091
  . .engine/env
fi
out=results/in-compose/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out" && chmod 0777 results/in-compose "$out"  # written by the image's uid 10001
floor=(--no-floor)
if [ -n "${FLOOR:-}" ]; then
  cp "$FLOOR" "$out/floor.json"
  floor=(--floor "/app/$out/floor.json")
fi
[ $# -eq 0 ] && set -- --quick
# shellcheck disable=SC2046
docker compose $(bash scripts/compose.sh files) --profile bench run --rm --no-deps bench \
  --processes "${PROCESSES:-1}" "${floor[@]}" --out "$out" "$@"
echo "bench-in-compose: $out"
