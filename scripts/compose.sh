#!/usr/bin/env bash
# The container stack: `make up STACK=compose`, `make down`, `make status` call this (scripts/up.sh, down.sh).
#   scripts/compose.sh up       build what is missing, start every service, wait until each passes its own health
#                               check and the gateway reports both backends ready for every model
#   scripts/compose.sh down     remove the stack's containers and networks (named volumes are kept)
#   scripts/compose.sh status   the container services, their state and health
#   scripts/compose.sh files    the compose files this configuration uses
# Env: GPU (1 default; 0 adds docker-compose.cpu.yml), TF_SIDE (real default; standin adds
#      docker-compose.standin.yml, explicitly: the real server is never replaced silently), DOCKER, PY, ARTIFACTS,
#      TWINSERVE_ENGINE (podman: a health driver runs while the stack is up), TWINSERVE_BIND,
#      TWINSERVE_GATEWAY_URL and TWINSERVE_READY_TIMEOUT (seconds) for the gateway's readiness check.
set -euo pipefail
cd "$(dirname "$0")/.."
# The engine `make engine` remembered, also when this script runs outside make.
if [ -z "${DOCKER_HOST:-}" ] && [ -f "${TWINSERVE_ENGINE_DIR:-.engine}/env" ]; then
  # shellcheck disable=SC1091
  . "${TWINSERVE_ENGINE_DIR:-.engine}/env"
fi
DOCKER=${DOCKER:-docker}
PY=${PY:-.venv/bin/python}
ARTIFACTS=${ARTIFACTS:-artifacts}
GPU=${GPU:-1}
TF_SIDE=${TF_SIDE:-${TWINSERVE_TF_SIDE:-real}}
STATE_DIR=${TWINSERVE_COMPOSE_STATE_DIR:-run/compose}
BIND=${TWINSERVE_BIND:-127.0.0.1}
HOST=$BIND
[ "$HOST" = 0.0.0.0 ] && HOST=127.0.0.1
GATEWAY_URL=${TWINSERVE_GATEWAY_URL:-http://$HOST:8000}
READY_TIMEOUT=${TWINSERVE_READY_TIMEOUT:-120}
PROJECT=twinserve

say() { echo "compose: $*"; }

engine_answers() { command -v "$DOCKER" >/dev/null 2>&1 && "$DOCKER" info >/dev/null 2>&1; }

files() {
  local out=(-f docker-compose.yml)
  case $GPU in
    0) out+=(-f docker-compose.cpu.yml) ;;
    1) ;;
    *) echo "GPU must be 1 or 0, got '$GPU'" >&2; exit 2 ;;
  esac
  case $TF_SIDE in
    real) ;;
    standin) out+=(-f docker-compose.standin.yml) ;;
    *) echo "TF_SIDE must be real or standin, got '$TF_SIDE'" >&2; exit 2 ;;
  esac
  echo "${out[@]}"
}

compose() {
  # shellcheck disable=SC2046
  "$DOCKER" compose $(files) "$@"
}

# Which TF image runs, said before anything starts (never a silent substitution).
announce_tf_side() {
  if [ "$TF_SIDE" = standin ]; then
    say "TF side: the twinserve TF Serving STAND-IN (not TensorFlow Serving), image twinserve/tfserving-standin:0.1.0," \
      "container twinserve-tfserving-standin, selected by TF_SIDE=standin (docker-compose.standin.yml)"
  else
    local base=tensorflow/serving:2.20.0-gpu
    [ "$GPU" = 0 ] && base=tensorflow/serving:2.20.0
    say "TF side: real TensorFlow Serving, image twinserve/tfserving:0.1.0 built on $base"
    if [ "${TWINSERVE_OFFLINE_IMAGES:-0}" = 1 ] && ! "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
      echo "compose: $base cannot be pulled here (make engine found no image registry) and is not in the" \
        "engine's store. To run the labelled stand-in instead, say so: make up STACK=compose TF_SIDE=standin" >&2
      exit 1
    fi
  fi
}

start_health_driver() {
  # podman runs health checks from systemd timers; without systemd something must run them (scripts/healthd.sh).
  [ "${TWINSERVE_ENGINE:-}" = podman ] || return 0
  mkdir -p "$STATE_DIR"
  if [ -f "$STATE_DIR/healthd.pid" ] && kill -0 "$(cat "$STATE_DIR/healthd.pid")" 2>/dev/null; then return 0; fi
  setsid bash scripts/healthd.sh "$PROJECT" >"$STATE_DIR/healthd.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/healthd.pid"
  say "podman health driver started (pid $!): runs each container's health check every ${TWINSERVE_HEALTH_INTERVAL:-5} s"
}

stop_health_driver() {
  if [ -f "$STATE_DIR/healthd.pid" ]; then
    kill "$(cat "$STATE_DIR/healthd.pid")" 2>/dev/null || true
    rm -f "$STATE_DIR/healthd.pid"
  fi
}

models() { grep -oE 'name:[[:space:]]*"[^"]+"' serving/tfserving/models.config | sed -E 's/.*"(.*)"/\1/'; }

# Every model answers ready through the gateway when pinned to each backend: both stacks serve it.
gateway_ready() {
  local model backend
  for model in $(models); do
    for backend in torchserve tfserving; do
      curl -sf --max-time 5 -H "X-Backend: $backend" "$GATEWAY_URL/v2/models/$model/ready" >/dev/null || return 1
    done
  done
}

# TorchServe's key for the host (direct TorchServe targets of `make bench`), at the path the native stack uses.
copy_key() {
  mkdir -p "$STATE_DIR/torchserve"
  compose exec -T torchserve cat key_file.json >"$STATE_DIR/torchserve/key_file.json.partial"
  chmod 0600 "$STATE_DIR/torchserve/key_file.json.partial"
  mv "$STATE_DIR/torchserve/key_file.json.partial" "$STATE_DIR/torchserve/key_file.json"
}

# What the host's load generator reads (loadtest/stack.py: from_compose_state); the TF side is checked there.
write_state() {
  local list
  list=$(files | sed -E 's/-f ([^ ]+)/"\1",/g; s/, *$//; s/,  */, /g')
  cat >"$STATE_DIR/state.json" <<EOF
{
  "source": "compose",
  "project": "$PROJECT",
  "host": "$HOST",
  "tf_side": "$TF_SIDE",
  "gpu": $([ "$GPU" = 1 ] && echo true || echo false),
  "compose_files": [$list],
  "services": {"torchserve": {"ready": true}, "tfserving": {"ready": true}, "gateway": {"ready": true}},
  "run_dir": "$STATE_DIR",
  "started_at": $(date +%s)
}
EOF
}

up() {
  files >/dev/null  # refuses a bad GPU or TF_SIDE before anything runs
  engine_answers || {
    echo "compose: STACK=compose but no container engine answers ($DOCKER info failed): run make engine" \
      "(installs and starts podman where Docker is absent) or start Docker" >&2
    exit 1
  }
  "$DOCKER" compose version >/dev/null 2>&1 || {
    echo "compose: the engine answers but Docker Compose v2 is missing ('$DOCKER compose version' failed):" \
      "run make engine" >&2
    exit 1
  }
  for dir in "$ARTIFACTS/torchserve" "$ARTIFACTS/tfserving" "$ARTIFACTS/samples"; do
    [ -d "$dir" ] || { echo "$dir is missing: run make export" >&2; exit 1; }
  done
  registered_models
  [ "$ARTIFACTS" = artifacts ] || echo "docker-compose.yml mounts ./artifacts; ARTIFACTS=$ARTIFACTS is not used" >&2
  # The Locust master saves UI runs here as the image's uid 10001 (docker-compose.yml: locust-master).
  mkdir -p results/in-compose && chmod 0777 results/in-compose
  announce_tf_side
  if [ "$GPU" = 1 ] && ! "$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia \
     && ! command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
    echo "note: no NVIDIA container runtime is visible; if compose fails with 'could not select device driver', run: make up GPU=0"
  fi
  # shellcheck disable=SC2046
  bash scripts/images.sh all $(files)
  # shellcheck disable=SC1091
  . <(bash scripts/images.sh args | sed 's/^/export /')
  gateway_key
  start_health_driver
  local t0
  t0=$(date +%s)
  say "starting: docker compose $(files) up -d --wait"
  compose up -d --no-build --wait --wait-timeout 900
  for _ in $(seq 1 $((READY_TIMEOUT / 2))); do gateway_ready && break; sleep 2; done
  gateway_ready || { echo "compose: the gateway does not report both backends ready" >&2; compose ps >&2; exit 1; }
  local ready=$(($(date +%s) - t0))
  local times=${TWINSERVE_IMAGE_TIMES:-build/image-times.txt}
  mkdir -p "$(dirname "$times")"
  echo "ready $ready s" >>"$times"
  copy_key
  write_state
  say "every service healthy and both backends ready through the gateway $ready s after up"
  compose ps --format 'table {{.Name}}\t{{.Image}}\t{{.Status}}'
  cat <<EOF
twinserve is up in containers (TF side: $TF_SIDE). Try:
  curl http://$HOST:8000/v2/health/ready
  curl$GW_AUTH http://$HOST:8000/v2/models/digits
  curl -d @$ARTIFACTS/samples/digits.json http://$HOST:8501/v1/models/digits:predict
  TOKEN=\$(python3 -c "import json;print(json.load(open('$STATE_DIR/torchserve/key_file.json'))['inference']['key'])")
  curl -H "Authorization: Bearer \$TOKEN" http://$HOST:8080/ping
  curl http://$HOST:8082/metrics
  make bench STACK=compose QUICK=1
Stop with: make down
EOF
}

# Registered models (issue 13): the TF side's models.config lists them (mounted over the image's copy), and the
# gateway mounts the registrations, whose folders must exist for their bind mounts.
registered_models() {
  mkdir -p models.d "$ARTIFACTS/registry"
  export TWINSERVE_TF_MODELS_CONFIG="$STATE_DIR/tfserving/models.config"
  "$PY" -m serving.tfserving.model_config --root . --out "$TWINSERVE_TF_MODELS_CONFIG" | sed 's/^/compose: TF side serves /'
}

# Beyond loopback the gateway refuses to start without API keys (gateway/exposure.py): make one, private to us,
# hand it to the gateway container, and let the printed curl lines read it (never print it).
GW_AUTH=""
gateway_key() {
  case $BIND in
    127.*|localhost|::1) return 0 ;;
  esac
  local key_file=$STATE_DIR/gateway/api_key
  if [ ! -s "$key_file" ]; then
    mkdir -p "$STATE_DIR/gateway"
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$key_file")
  fi
  chmod 600 "$key_file"
  export TWINSERVE_LIMITS__API_KEYS="[\"$(cat "$key_file")\"]"
  GW_AUTH=" -H \"Authorization: Bearer \$(cat $key_file)\""
  say "TWINSERVE_BIND=$BIND is not loopback: the gateway requires the API key in $key_file (mode 0600)"
}

down() {
  if engine_answers && "$DOCKER" compose version >/dev/null 2>&1; then
    # All override files and the observe profile, so every service of the project is found; volumes are kept.
    "$DOCKER" compose -f docker-compose.yml -f docker-compose.standin.yml --profile observe down --remove-orphans
  fi
  stop_health_driver
  rm -rf "$STATE_DIR"
}

status() {
  engine_answers || { echo "containers: no container engine answers"; return 0; }
  local names name health
  names=$("$DOCKER" ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}' 2>/dev/null || true)
  if [ -z "$names" ]; then echo "containers: none of the $PROJECT project"; return 0; fi
  echo "containers ($PROJECT project; TF side: $(sed -n 's/.*"tf_side": "\(.*\)".*/\1/p' "$STATE_DIR/state.json" 2>/dev/null || echo unknown)):"
  for name in $names; do
    health=$("$DOCKER" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}no check{{end}}' "$name" 2>/dev/null)
    "$DOCKER" ps -a --filter "name=^$name\$" --format "{{.Names}}\t{{.Image}}\t{{.Status}}, $health\t{{.Ports}}" | sed "s/^/  /"
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  files) files ;;
  *) echo "usage: $0 up|down|status|files" >&2; exit 2 ;;
esac
