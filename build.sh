#!/usr/bin/env bash
# Builds the orchestrator container image.
#
#   ./build.sh [-t TAG] [-r REGISTRY] [-p] [-b] [-h]
#
# Runs cargo fmt --check, clippy and the tests first (unless -b), then builds
# the image with Docker. With -p it builds for linux/amd64 and linux/arm64 with
# docker buildx and pushes REGISTRY/orchestrator:TAG.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./build.sh [-t TAG] [-r REGISTRY] [-p] [-b] [-h]
  -t TAG       image tag (default: the short git commit, else "dev")
  -r REGISTRY  registry/namespace to prefix, e.g. ghcr.io/acme (default: none)
  -p           push: build linux/amd64 and linux/arm64 with docker buildx and push
  -b           skip fmt, clippy and tests
  -h           show this help
USAGE
}

tag=""
registry=""
push=false
skip_tests=false
while getopts ":t:r:pbh" opt; do
  case "$opt" in
    t) tag="$OPTARG" ;;
    r) registry="${OPTARG%/}" ;;
    p) push=true ;;
    b) skip_tests=true ;;
    h) usage; exit 0 ;;
    :) echo "build.sh: option -$OPTARG needs a value" >&2; usage >&2; exit 2 ;;
    *) echo "build.sh: unknown option -$OPTARG" >&2; usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ "$#" -gt 0 ]; then
  echo "build.sh: unexpected argument: $1" >&2
  usage >&2
  exit 2
fi

cd "$(dirname "$0")"
sha="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
if [ -z "$tag" ]; then
  if [ "$sha" = unknown ]; then tag=dev; else tag="$sha"; fi
fi
image="orchestrator:${tag}"
if [ -n "$registry" ]; then image="${registry}/${image}"; fi

if ! command -v docker >/dev/null 2>&1; then
  echo "build.sh: docker is not installed (needed to build the image)" >&2
  exit 1
fi
if [ "$push" = true ] && ! docker buildx version >/dev/null 2>&1; then
  echo "build.sh: docker buildx is not available (needed for the multi-arch push with -p)" >&2
  exit 1
fi

if [ "$skip_tests" = false ]; then
  cargo fmt --all --check
  cargo clippy --locked --workspace --all-targets -- -D warnings
  cargo test --workspace --locked
fi

args=(--build-arg "VERSION=${version}" --build-arg "GIT_SHA=${sha}" -t "$image")
if [ "$push" = true ]; then
  docker buildx build --platform linux/amd64,linux/arm64 "${args[@]}" --push .
else
  docker build "${args[@]}" .
fi
echo "built ${image}"
