#!/usr/bin/env bash
# `make down`: stop what `make up` started, in containers (when a Docker engine answers) and natively.
# Env: PY (venv python), DOCKER (the docker command; tests point it at a fake).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DOCKER=${DOCKER:-docker}

# Containers and networks of the compose project (scripts/compose.sh down); volumes are kept.
DOCKER=$DOCKER PY=$PY bash scripts/compose.sh down
if [ -x "$PY" ]; then
  "$PY" -m supervisor down
else
  echo "nothing to stop natively (no $PY)"
fi
