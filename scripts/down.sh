#!/usr/bin/env bash
# `make down`: stop what `make up` started, in containers (when a Docker engine answers) and natively.
# Env: PY (venv python), DOCKER (the docker command; tests point it at a fake).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DOCKER=${DOCKER:-docker}

if command -v "$DOCKER" >/dev/null 2>&1 && "$DOCKER" info >/dev/null 2>&1 \
   && "$DOCKER" compose version >/dev/null 2>&1; then
  # With the observe profile, so Prometheus and Grafana stop too; volumes (results, dashboards' data) are kept.
  "$DOCKER" compose -f docker-compose.yml --profile observe down --remove-orphans
fi
if [ -x "$PY" ]; then
  "$PY" -m serving.supervisor down
else
  echo "nothing to stop natively (no $PY)"
fi
