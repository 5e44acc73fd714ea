#!/usr/bin/env bash
# `make engine`: make sure a Docker-compatible engine answers. With Docker (or an engine already configured by
# the caller's DOCKER_HOST) it does nothing and says so. Otherwise it installs podman and runc with apt, starts
# `podman system service` on a Docker-compatible socket with our containers.conf, and remembers it in .engine/
# (git-ignored): the Makefile includes .engine/engine.mk, so every later `make` command talks to it.
# Idempotent: run again, it reuses the running service. `scripts/engine.sh stop` stops the service it started.
# Env: DOCKER (the docker command; tests point it at a fake), TWINSERVE_ENGINE_DIR (default .engine),
#      TWINSERVE_PODMAN_SOCKET (default /run/podman/podman.sock).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
DOCKER=${DOCKER:-docker}
DIR=${TWINSERVE_ENGINE_DIR:-$REPO/.engine}
SOCKET=${TWINSERVE_PODMAN_SOCKET:-/run/podman/podman.sock}
CONF=$REPO/deploy/engine/containers.conf
COMPOSE_VERSION=2.40.3

say() { echo "engine: $*"; }

# The engine that `make engine` remembered, if any (its env file names the socket).
remembered() { [ -f "$DIR/env" ]; }

podman_env() {
  export CONTAINERS_CONF=$CONF DOCKER_HOST=unix://$SOCKET DOCKER_BUILDKIT=0
}

# True when the engine at the current DOCKER_HOST answers the Docker API (`_ping` is the cheapest call).
api_answers() {
  local host=${DOCKER_HOST:-}
  local sock=${host#unix://}
  if [ "$sock" != "$host" ] && [ -S "$sock" ]; then
    curl -sf --max-time 5 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && return 0
  fi
  command -v "$DOCKER" >/dev/null 2>&1 && "$DOCKER" info >/dev/null 2>&1
}

install_podman() {
  local missing=()
  for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { echo "engine: installing ${missing[*]} needs root (apt-get)" >&2; exit 1; }
  command -v apt-get >/dev/null 2>&1 || {
    echo "engine: no Docker engine and no apt-get to install podman: install Docker or podman yourself" >&2
    exit 1
  }
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
}

start_service() {
  mkdir -p "$(dirname "$SOCKET")" "$DIR"
  if [ -f "$DIR/podman.pid" ] && kill -0 "$(cat "$DIR/podman.pid")" 2>/dev/null && api_answers; then
    say "podman service already running (pid $(cat "$DIR/podman.pid")) on $SOCKET"
    return 0
  fi
  rm -f "$SOCKET"
  # setsid: the service outlives this make command and ignores the terminal's signals.
  setsid podman system service --time=0 "unix://$SOCKET" >"$DIR/podman.log" 2>&1 </dev/null &
  echo $! >"$DIR/podman.pid"
  for _ in $(seq 1 50); do
    api_answers && { say "podman service started (pid $(cat "$DIR/podman.pid")) on $SOCKET"; return 0; }
    sleep 0.2
  done
  echo "engine: podman system service did not answer on $SOCKET; its log:" >&2
  cat "$DIR/podman.log" >&2
  exit 1
}

# `docker compose` for the docker CLI: the pinned compose binary (scripts/check-compose.sh) as a CLI plugin in
# our own DOCKER_CONFIG, so a user's ~/.docker is not touched.
link_compose() {
  local bin=$REPO/.venv/bin/docker-compose-v$COMPOSE_VERSION
  mkdir -p "$DIR/docker/cli-plugins"
  # podman's own CLI reads DOCKER_CONFIG too, and refuses to run without the file (no registry logins here).
  [ -f "$DIR/docker/config.json" ] || echo '{}' >"$DIR/docker/config.json"
  if [ ! -x "$bin" ] && [ -x "$REPO/.venv/bin/python" ]; then
    PY=$REPO/.venv/bin/python bash scripts/check-compose.sh --fetch-only
  fi
  [ -x "$bin" ] && ln -sfn "$bin" "$DIR/docker/cli-plugins/docker-compose"
  return 0
}

# No registry answers: our images build on a local Debian base and a host wheelhouse (scripts/images.sh).
registry_answers() {
  curl -s --max-time 5 -o /dev/null https://registry-1.docker.io/v2/ 2>/dev/null
}

remember() {
  local offline=$1
  {
    echo "# Written by scripts/engine.sh (make engine): the podman engine every make command uses."
    echo "export CONTAINERS_CONF=$CONF"
    echo "export DOCKER_HOST=unix://$SOCKET"
    echo "export DOCKER_BUILDKIT=0"
    echo "export DOCKER_CONFIG=$DIR/docker"
    echo "export TWINSERVE_ENGINE=podman"
    echo "export TWINSERVE_OFFLINE_IMAGES=$offline"
  } >"$DIR/env"
  # The same, as make syntax (the Makefile includes it).
  sed -n 's/^export \([A-Z_]*\)=\(.*\)$/export \1 := \2/p' "$DIR/env" >"$DIR/engine.mk"
  if ! command -v nvidia-ctk >/dev/null 2>&1 && ! command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
    # podman reaches GPUs through the NVIDIA Container Toolkit's CDI specs; without it, CPU images by default.
    echo "GPU ?= 0" >>"$DIR/engine.mk"
    say "no NVIDIA Container Toolkit: make commands default to GPU=0 (CPU images; GPU=1 on the command line overrides)"
  fi
}

stop() {
  if [ -f "$DIR/podman.pid" ] && kill -0 "$(cat "$DIR/podman.pid")" 2>/dev/null; then
    kill "$(cat "$DIR/podman.pid")"
    say "stopped the podman service (pid $(cat "$DIR/podman.pid"))"
  fi
  rm -f "$DIR/podman.pid" "$DIR/env" "$DIR/engine.mk"
}

case ${1:-start} in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

if remembered; then
  # shellcheck disable=SC1091
  . "$DIR/env"
  if api_answers; then
    say "podman engine (remembered in $DIR/env) answers on $DOCKER_HOST"
    link_compose
    exit 0
  fi
  say "the remembered podman engine does not answer: starting it again"
elif api_answers; then
  say "a Docker engine answers (${DOCKER_HOST:-default socket}): nothing to do"
  exit 0
fi

install_podman
podman_env
start_service
link_compose
offline=0
registry_answers || offline=1
remember "$offline"
if [ "$offline" = 1 ]; then
  say "no image registry answers: images build on a local Debian base (scripts/images.sh, run by make up)"
fi
say "remembered in $DIR/env; every make command now uses it. In a shell: . $DIR/env"
