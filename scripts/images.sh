#!/usr/bin/env bash
# `make images`: what our images build on where no image registry answers (TWINSERVE_OFFLINE_IMAGES=1, set by
# `make engine`), then `docker compose build`. Each step is skipped when its result already exists, so a second
# run reuses everything (and the engine's layer cache reuses unchanged layers).
#   base        localhost/twinserve/python:3.11-bookworm: Debian 12 by debootstrap + the host's CA (deploy/base)
#   wheelhouse  build/wheelhouse/<image>/: the wheels pip would fetch, downloaded once on the host with the
#               host's pip configuration (here: the CPU torch from a local folder), then a scratch image
#               localhost/twinserve/wheels:<image> that the Dockerfiles' WHEELS build argument names
# With a registry (users' machines) nothing of this runs: the Dockerfiles' defaults are the ordinary ones.
# Usage: scripts/images.sh [base|wheels|build|all] [compose files...]   Env: PY (host venv python), DOCKER.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DOCKER=${DOCKER:-docker}
BASE=localhost/twinserve/python:3.11-bookworm
ROOT_IMAGE=localhost/twinserve/debian:bookworm
WHEELS=build/wheelhouse
TIMES=${TWINSERVE_IMAGE_TIMES:-build/image-times.txt}

say() { echo "images: $*"; }
exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
# Seconds since $1 (from `date +%s`), appended to $TIMES as "<what> <seconds> s".
took() { local s=$(($(date +%s) - $2)); mkdir -p "$(dirname "$TIMES")"; echo "$1 $s s" >>"$TIMES"; say "$1 took $s s"; }

debian_mirror() {
  # The Debian URI this host's apt uses (deb822 or one-line sources), else the default mirror.
  local uri
  uri=$(grep -hsE '^(URIs:|deb) ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  if exists "$BASE"; then say "$BASE exists: reused"; return 0; fi
  local t0 tmp
  t0=$(date +%s)
  if ! exists "$ROOT_IMAGE"; then
    command -v debootstrap >/dev/null 2>&1 || { echo "images: debootstrap is missing: run make engine" >&2; exit 1; }
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    say "debootstrap Debian 12 (python3) from $(debian_mirror)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$tmp/root" \
      "$(debian_mirror)" >"$tmp/debootstrap.log" 2>&1 || { cat "$tmp/debootstrap.log" >&2; exit 1; }
    # What a slim image leaves out: downloaded packages, docs, man pages, translations.
    rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"* \
      "$tmp/root/usr/share/doc/"* "$tmp/root/usr/share/man/"* "$tmp/root/usr/share/locale/"* \
      "$tmp/root/usr/share/info/"*
    tar -C "$tmp/root" -c . | "$DOCKER" import - "$ROOT_IMAGE" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
  fi
  tmp=$(mktemp -d)
  cp deploy/base/Dockerfile "$tmp/"
  # Python's ssl and pip in builds trust what the host trusts (TLS may be intercepted on the way to PyPI).
  cp "${TWINSERVE_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}" "$tmp/ca-certificates.crt"
  "$DOCKER" build -q -t "$BASE" --build-arg ROOT_IMAGE="$ROOT_IMAGE" "$tmp" >/dev/null
  rm -rf "$tmp"
  took "base-image" "$t0"
}

# fill_wheels NAME REQUIREMENTS...: download the wheels for one image, build its scratch wheel image.
fill_wheels() {
  local name=$1
  shift
  local dir=$WHEELS/$name image=localhost/twinserve/wheels:$name t0
  if exists "$image" && [ -f "$dir/.complete" ]; then say "$image exists: reused"; return 0; fi
  t0=$(date +%s)
  mkdir -p "$dir"
  # The host's pip configuration decides where wheels come from (here: the local CPU torch wheel first).
  grep -v '^torch==' requirements/constraints.txt >"$dir/constraints.txt"
  "$PY" -m pip download --quiet --only-binary=:all: --dest "$dir" -c "$dir/constraints.txt" "$@"
  printf 'FROM scratch\nCOPY *.whl /\n' >"$dir/Dockerfile"
  "$DOCKER" build -q -t "$image" "$dir" >/dev/null
  touch "$dir/.complete"
  took "wheelhouse-$name" "$t0"
}

build_wheels() {
  fill_wheels torchserve pip==25.3 -r serving/torchserve/requirements.txt
  fill_wheels tfserving pip==25.3 -r serving/tfserving/standin/requirements.txt
}

# Build arguments for compose: only set where our local images stand in; otherwise the Dockerfiles' defaults.
export_args() {
  if [ "${TWINSERVE_OFFLINE_IMAGES:-0}" = 1 ]; then
    export PYTHON_BASE=$BASE TORCH_VARIANT=cpu DEBIAN_BASE=$ROOT_IMAGE
    export TORCHSERVE_WHEELS=localhost/twinserve/wheels:torchserve TFSERVING_WHEELS=localhost/twinserve/wheels:tfserving
  fi
}

# A digest of everything the builds read: the compose files and Dockerfiles, every file .dockerignore lets into
# the context, the build arguments and the base images' ids.
inputs_digest() {
  local paths=(docker-compose*.yml $(find . -name Dockerfile -not -path './.venv/*' -not -path './build/*'))
  paths+=($(sed -n 's/^!//p' .dockerignore))
  {
    printf '%s\n' "$@"
    env | grep -E '^(PYTHON_BASE|TORCH_VARIANT|TORCHSERVE_WHEELS|TFSERVING_WHEELS)=' | sort
    for image in "${PYTHON_BASE:-}" "${TORCHSERVE_WHEELS:-}" "${TFSERVING_WHEELS:-}"; do
      [ -n "$image" ] && "$DOCKER" image inspect --format '{{.Id}}' "$image" 2>/dev/null
    done
    find "${paths[@]}" -type f -not -name '*.pyc' -not -path '*/__pycache__/*' -print0 2>/dev/null | sort -z \
      | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}

compose_build() {
  export_args
  local t0 digest stamp image missing=0
  t0=$(date +%s)
  digest=$(inputs_digest "$@")
  stamp=$(dirname "$TIMES")/images-$(printf '%s' "$*" | sha256sum | cut -c1-12).digest
  for image in $("$DOCKER" compose "$@" config --images); do exists "$image" || missing=1; done
  # The engine's layer cache still re-copies big stages here (podman's classic builder), so skip what is current.
  if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    say "every image is current (build inputs unchanged since the last build): reused"
    return 0
  fi
  "$DOCKER" compose "$@" build
  mkdir -p "$(dirname "$stamp")"
  echo "$digest" >"$stamp"
  took "compose-build" "$t0"
}

what=${1:-all}
shift || true
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(-f docker-compose.yml)
case $what in
  base) build_base ;;
  wheels) build_wheels ;;
  build) compose_build "${files[@]}" ;;
  all)
    if [ "${TWINSERVE_OFFLINE_IMAGES:-0}" = 1 ]; then build_base; build_wheels; fi
    compose_build "${files[@]}"
    ;;
  args) export_args; env | grep -E '^(PYTHON_BASE|DEBIAN_BASE|TORCH_VARIANT|TORCHSERVE_WHEELS|TFSERVING_WHEELS)=' || true ;;
  *) echo "usage: $0 [base|wheels|build|all|args] [compose -f files...]" >&2; exit 2 ;;
esac
