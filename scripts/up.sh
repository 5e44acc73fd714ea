#!/usr/bin/env bash
# `make up`: docker compose when a Docker engine answers, else the native stack (supervisor, TF Serving stand-in).
# Env: PY (venv python), ARTIFACTS (exported models), GPU (1 default; 0 adds docker-compose.cpu.yml),
#      STACK (auto default; compose or native force one), TF_SIDE (compose: real default, standin on request),
#      DOCKER (the docker command; tests point it at a fake), TWINSERVE_BIND (127.0.0.1; beyond loopback the
#      gateway requires an API key, generated into run/gateway/api_key natively and run/compose/gateway/api_key
#      in containers). The container path is scripts/compose.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARTIFACTS=${ARTIFACTS:-artifacts}
GPU=${GPU:-1}
DOCKER=${DOCKER:-docker}
BIND=${TWINSERVE_BIND:-127.0.0.1}

native() {
  echo "$1: starting natively; TF Serving is a stand-in"
  # the supervisor makes the gateway's API key itself when the host is not loopback
  exec "$PY" -m supervisor up --artifacts "$ARTIFACTS" ${TWINSERVE_BIND:+--host "$BIND"}
}

STACK=${STACK:-auto}
case $STACK in
  auto) ;;
  native) native "STACK=native" ;;
  compose) exec bash scripts/compose.sh up ;;  # fails clearly when no engine answers
  *) echo "STACK must be auto, compose or native, got '$STACK'" >&2; exit 2 ;;
esac

if ! command -v "$DOCKER" >/dev/null 2>&1; then
  native "no Docker engine (no '$DOCKER' command)"
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
  native "no Docker engine answers ($DOCKER info failed)"
fi
if ! "$DOCKER" compose version >/dev/null 2>&1; then
  native "the Docker engine answers but Docker Compose v2 is missing ('$DOCKER compose version' failed)"
fi

exec bash scripts/compose.sh up
