#!/bin/sh
# TorchServe in the container: foreground, token auth on (the upstream entrypoint passes --disable-token-auth,
# so it is not used), keys rotated before they expire, a clean stop on SIGTERM.
set -eu

# A key file left by an earlier start would be read as current until TorchServe rewrites it.
rm -f key_file.json

torchserve --foreground --ts-config /home/model-server/config.properties --ncs &
server=$!
python3 /usr/local/share/twinserve/ts_keys.py rotate &
rotator=$!

# docker stop signals this shell (PID 1): stop the Java frontend cleanly, then let the launcher exit.
trap 'kill "$rotator" 2>/dev/null || true; torchserve --stop || kill "$server"; wait "$server"' TERM INT
wait "$server"
