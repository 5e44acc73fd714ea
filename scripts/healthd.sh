#!/usr/bin/env bash
# podman's health checks run from systemd timers; without systemd (containers, CI machines) a container's health
# stays "starting" forever and `depends_on: condition: service_healthy` never resolves. This loop runs each
# running container's own check (`podman healthcheck run`, which applies its retries and start period) while
# the stack is up. scripts/compose.sh starts it before `compose up` and stops it on `make down`.
# Usage: scripts/healthd.sh PROJECT   Env: TWINSERVE_HEALTH_INTERVAL (seconds, default 5),
#        TWINSERVE_HEALTH_IDLE_EXIT (exit after this many seconds with no container of PROJECT, default 900).
set -uo pipefail
project=${1:?usage: healthd.sh PROJECT}
interval=${TWINSERVE_HEALTH_INTERVAL:-5}
idle_exit=${TWINSERVE_HEALTH_IDLE_EXIT:-900}
idle=0
while :; do
  names=$(podman ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}}' 2>/dev/null)
  if [ -z "$names" ]; then
    idle=$((idle + interval))
    [ "$idle" -ge "$idle_exit" ] && { echo "no container of $project for $idle s: exiting"; exit 0; }
  else
    idle=0
  fi
  for name in $names; do
    # Containers without a health check answer an error; one that fails its check is reported by podman.
    out=$(podman healthcheck run "$name" 2>&1) || case $out in
      *"has no defined healthcheck"*) ;;
      *) echo "$(date -u +%FT%TZ) $name: ${out:-unhealthy}" ;;
    esac
  done
  sleep "$interval"
done
