#!/usr/bin/env bash
# `make up`: docker compose when a Docker engine answers, else the native stack (supervisor, TF Serving stand-in).
# Env: PY (venv python), ARTIFACTS (exported models), GPU (1 default; 0 adds docker-compose.cpu.yml),
#      DOCKER (the docker command; tests point it at a fake), TWINSERVE_BIND (127.0.0.1; beyond loopback the
#      gateway gets a generated API key in $RUN_DIR/gateway/api_key), RUN_DIR (run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARTIFACTS=${ARTIFACTS:-artifacts}
GPU=${GPU:-1}
DOCKER=${DOCKER:-docker}
BIND=${TWINSERVE_BIND:-127.0.0.1}
RUN_DIR=${RUN_DIR:-run}

native() {
  echo "$1: starting natively; TF Serving is a stand-in"
  # the supervisor makes the gateway's API key itself when the host is not loopback
  exec "$PY" -m serving.supervisor up --artifacts "$ARTIFACTS" ${TWINSERVE_BIND:+--host "$BIND"}
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

# Beyond loopback the gateway refuses to start without API keys (gateway/exposure.py): make one, private to us.
gw_auth=""
case $BIND in
  127.*|localhost|::1) ;;
  *)
    key_file=$RUN_DIR/gateway/api_key
    if [ ! -s "$key_file" ]; then
      mkdir -p "$RUN_DIR/gateway"
      (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$key_file")
    fi
    chmod 600 "$key_file"
    export TWINSERVE_LIMITS__API_KEYS="[\"$(cat "$key_file")\"]"
    gw_auth=" -H \"Authorization: Bearer \$(cat $key_file)\""
    echo "TWINSERVE_BIND=$BIND is not loopback: the gateway requires the API key in $key_file (mode 0600)"
    ;;
esac

echo "Docker engine answers: docker compose, $mode"
"$DOCKER" compose "${files[@]}" up -d --build --wait --wait-timeout 900

host=$BIND
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
token="\$($DOCKER compose exec -T torchserve python3 -c 'import json;print(json.load(open(\"key_file.json\"))[\"inference\"][\"key\"])')"
cat <<EOF
twinserve is up in containers ($mode). Try:
  curl http://$host:8000/v2/health/ready
  curl$gw_auth http://$host:8000/v2/models/digits
  curl -H "Authorization: Bearer $token" http://$host:8080/ping
  curl -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d @$ARTIFACTS/samples/digits.json http://$host:8080/predictions/digits
  curl -d @$ARTIFACTS/samples/digits.json http://$host:8501/v1/models/digits:predict
  curl http://$host:8082/metrics
  curl http://$host:8501/monitoring/prometheus/metrics
Locust web UI: http://$host:8089    Dashboards: docker compose --profile observe up -d --wait, then http://$host:3000
Stop with: make down
EOF
