#!/usr/bin/env bash
# `make test-containers`: the container path from nothing, as CI runs it. A container engine (`make engine`:
# podman where Docker is absent), the compose stack (`make up STACK=compose`), the container tests (tritonclient
# through the containerised gateway on both stacks for every registered model, one user model included, bad input,
# health, a stopped server, the Locust web UI with two worker containers), `make bench STACK=compose QUICK=1`, then
# `make down`, checked to leave no container or network of the project behind.
# Env: PY, GPU, TF_SIDE (as for make up), TWINSERVE_BIND. Timings go to build/image-times.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PY

bash scripts/engine.sh
# shellcheck disable=SC1091
[ -f .engine/env ] && . .engine/env
[ -f .engine/engine.mk ] && grep -q '^GPU ?= 0' .engine/engine.mk && export GPU=${GPU:-0}

# A user model the containers have never served (two inputs, FP32 + INT64; two outputs), registered as
# `make add-model` does and removed again on the way out: tests/containers/test_compose_registered.py checks it
# (and every other registered model) on both stacks through the containerised gateway.
SELFTEST_MODEL=selftest-pairs
SELFTEST_SPEC=tests/byom/specs/pairs.py
selftest_remove() {
  # Only ours: a user's own model of that name is never touched.
  if grep -qs "$SELFTEST_SPEC" "models.d/$SELFTEST_MODEL/model.json"; then
    "$PY" -m models.addmodel remove --name "$SELFTEST_MODEL" >/dev/null
  fi
}

teardown() {
  bash scripts/compose.sh down >/dev/null 2>&1 || true
  selftest_remove
}
trap teardown EXIT

selftest_remove  # a run killed before its teardown left it behind
"$PY" -m models.addmodel add --spec "$SELFTEST_SPEC" --name "$SELFTEST_MODEL"
STACK=compose bash scripts/up.sh
# The observe profile's Prometheus (from Debian's package where prom/prometheus cannot be pulled).
observe=($(bash scripts/compose.sh files) --profile observe)
[ "${TWINSERVE_OFFLINE_IMAGES:-0}" = 1 ] && observe=(${observe[@]/--profile/-f docker-compose.observe-local.yml --profile})
# shellcheck disable=SC1090
. <(bash scripts/images.sh args | sed 's/^/export /')
t0=$(date +%s)
docker compose "${observe[@]}" build prometheus
docker compose "${observe[@]}" up -d --no-build --no-deps --wait prometheus
echo "prometheus $(($(date +%s) - t0)) s" >>"${TWINSERVE_IMAGE_TIMES:-build/image-times.txt}"
TWINSERVE_CONTAINER_TESTS=1 "$PY" -m pytest tests/containers -q -p no:cacheprovider
out=results/compose-quick-$(date -u +%Y%m%d-%H%M%S)
"$PY" -m loadtest.run --quick --stack compose --out "$out"
grep -q '"stack": "compose"' "$out/summary.json" || { echo "$out/summary.json does not say stack compose" >&2; exit 1; }
grep -q 'stack compose' "$out/report.html" || { echo "$out/report.html does not say stack compose" >&2; exit 1; }

trap - EXIT
bash scripts/compose.sh down
selftest_remove
left=$(docker ps -a -q --filter label=com.docker.compose.project=twinserve)
nets=$(docker network ls -q --filter label=com.docker.compose.project=twinserve)
[ -z "$left$nets" ] || { echo "make down left containers or networks: $left $nets" >&2; exit 1; }
echo "test-containers: passed; timings in ${TWINSERVE_IMAGE_TIMES:-build/image-times.txt}:"
cat "${TWINSERVE_IMAGE_TIMES:-build/image-times.txt}" 2>/dev/null || true
