#!/usr/bin/env bash
# `make up`: docker compose when a Docker engine answers, else the native stack (supervisor, TF Serving stand-in).
# Env: PY (venv python), ARTIFACTS (exported models), GPU (1 default; 0 adds docker-compose.cpu.yml),
#      DOCKER (the docker command; tests point it at a fake).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARTIFACTS=${ARTIFACTS:-artifacts}
GPU=${GPU:-1}
DOCKER=${DOCKER:-docker}
BIND=${TWINSERVE_BIND:-127.0.0.1}

native() {
  echo "$1: starting natively; TF Serving is a stand-in"
  exec "$PY" -m serving.supervisor up --artifacts "$ARTIFACTS"
}

if ! command -v "$DOCKER" >/dev/null 2>&1; then
  native "no Docker engine (no '$DOCKER' command)"
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
  native "no Docker engine answers ($DOCKER info failed)"
fi
if ! "$DOCKER" compose version >/dev/null 2>&1; then
  native "the Docker engine answers but Docker Compose v2 is missing ('$DOCKER compose version' failed)"
fi

files=(-f docker-compose.yml)
case $GPU in
  0) files+=(-f docker-compose.cpu.yml); mode="CPU (GPU=0)" ;;
  1) mode="GPU" ;;
  *) echo "GPU must be 1 or 0, got '$GPU'" >&2; exit 2 ;;
esac
if [ "$GPU" = 1 ] && ! "$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia \
   && ! command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
  echo "note: no NVIDIA container runtime is visible; if compose fails with 'could not select device driver', run: make up GPU=0"
fi
for dir in "$ARTIFACTS/torchserve" "$ARTIFACTS/tfserving" "$ARTIFACTS/samples"; do
  [ -d "$dir" ] || { echo "$dir is missing: run make export" >&2; exit 1; }
done
if [ "$ARTIFACTS" != artifacts ]; then
  echo "docker-compose.yml mounts ./artifacts; ARTIFACTS=$ARTIFACTS is not used by containers" >&2
fi

echo "Docker engine answers: docker compose, $mode"
"$DOCKER" compose "${files[@]}" up -d --build --wait --wait-timeout 900

host=$BIND
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
token="\$($DOCKER compose exec -T torchserve python3 -c 'import json;print(json.load(open(\"key_file.json\"))[\"inference\"][\"key\"])')"
cat <<EOF
twinserve is up in containers ($mode). Try:
  curl http://$host:8000/v2/health/ready
  curl http://$host:8000/v2/models/digits
  curl -H "Authorization: Bearer $token" http://$host:8080/ping
  curl -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d @$ARTIFACTS/samples/digits.json http://$host:8080/predictions/digits
  curl -d @$ARTIFACTS/samples/digits.json http://$host:8501/v1/models/digits:predict
  curl http://$host:8082/metrics
  curl http://$host:8501/monitoring/prometheus/metrics
Locust web UI: http://$host:8089    Dashboards: docker compose --profile observe up -d --wait, then http://$host:3000
Stop with: make down
EOF
