#!/bin/bash
# Docker healthcheck for TF Serving. The tensorflow/serving images ship no curl (the CPU one) and no Python, so
# this speaks HTTP/1.0 over bash's /dev/tcp: healthy when every model in models.config has a version AVAILABLE.
# Usage: tfserving_health.sh [MODELS_CONFIG [REST_PORT [HOST]]]
set -euo pipefail
config=${1:-/etc/twinserve/tfserving/models.config}
port=${2:-8501}
host=${3:-127.0.0.1}

models=$(grep -oE 'name:[[:space:]]*"[^"]+"' "$config" | sed -E 's/^name:[[:space:]]*"(.*)"$/\1/')
if [ -z "$models" ]; then
  echo "no model named in $config"
  exit 1
fi
for model in $models; do
  if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "$model: cannot connect to $host:$port"
    exit 1
  fi
  printf 'GET /v1/models/%s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$model" "$host" >&3
  reply=$(timeout 5 cat <&3 || true)
  exec 3<&-
  status=${reply%%$'\r'*}
  case $status in
    "HTTP/1."?" 200"*) ;;
    *) echo "$model: GET /v1/models/$model answered '${status:-nothing}'"; exit 1 ;;
  esac
  if [[ $reply != *'"AVAILABLE"'* ]]; then
    echo "$model: no version AVAILABLE"
    exit 1
  fi
done
echo "AVAILABLE: ${models//$'\n'/ }"
