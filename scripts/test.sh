#!/usr/bin/env bash
# The whole test suite, set-up included: on a fresh Debian/Ubuntu machine
# with only Rust, finds every tool the tests run (and says where), lists
# every missing one at once with the command that installs it, installs
# them, and only then compiles and runs `cargo test --workspace --locked`.
#
#   scripts/test.sh                  find or install the tools, run the suite
#   scripts/test.sh --no-install     list what is missing and stop (exit 1)
#   scripts/test.sh --tools-only     find or install the tools, run nothing
#   scripts/test.sh -- ARGS          pass ARGS on to cargo test
#
# Once the tools are there, `cargo test --workspace --locked` is the inner
# loop. Python tools go into a virtualenv, ORCHESTRATOR_CI_TOOLS (default
# ~/.cache/orchestrator-ci-tools), which .ci/run shares.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ORCHESTRATOR_CI_TOOLS:-$HOME/.cache/orchestrator-ci-tools}"
OPENAPI_SPEC_VALIDATOR_PIN="openapi-spec-validator==0.9.0"
install=1 run=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0 ;;
    --tools-only) run=0 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Root installs directly; elsewhere through sudo.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo "; fi

# What each tool is for, the variable that may name it, and its install line.
TOOL_NAMES=(kubectl prometheus promtool openapi-spec-validator)
purpose() {
  case "$1" in
    kubectl) echo "kubectl tests against the simulator" ;;
    prometheus) echo "the scrape test" ;;
    promtool) echo "the alert-rule checks" ;;
    openapi-spec-validator) echo "validates the served OpenAPI document" ;;
  esac
}
env_var() {
  case "$1" in
    kubectl) echo KUBECTL ;;
    prometheus) echo PROMETHEUS ;;
    promtool) echo PROMTOOL ;;
    openapi-spec-validator) echo OPENAPI_SPEC_VALIDATOR ;;
  esac
}
install_line() {
  case "$1" in
    kubectl) echo "${SUDO}apt-get install -y kubernetes-client" ;;
    prometheus|promtool) echo "${SUDO}apt-get install -y prometheus" ;;
    openapi-spec-validator) echo "python3 -m venv $TOOLS && $TOOLS/bin/pip install $OPENAPI_SPEC_VALIDATOR_PIN" ;;
  esac
}

find_tool() { # NAME: prints its path, or nothing
  local var value
  var="$(env_var "$1")"
  value="${!var:-}"
  if [ -n "$value" ]; then
    if [ -x "$value" ]; then echo "$value"; fi
    return 0
  fi
  if command -v "$1" 2>/dev/null; then return 0; fi
  if [ "$1" = openapi-spec-validator ] && [ -x "$TOOLS/bin/$1" ]; then echo "$TOOLS/bin/$1"; fi
  return 0
}

missing_tools() { # prints the names of the tools not found
  local t
  for t in "${TOOL_NAMES[@]}"; do
    if [ -z "$(find_tool "$t")" ]; then echo "$t"; fi
  done
}

list_missing() { # NAME...: one line each, with the install command
  local t
  echo "scripts/test.sh: missing $# tool(s) the tests need:" >&2
  for t in "$@"; do
    printf '  %-24s (%s): %s\n' "$t" "$(purpose "$t")" "$(install_line "$t")" >&2
  done
}

mapfile -t missing < <(missing_tools)
if [ "${#missing[@]}" -gt 0 ]; then
  list_missing "${missing[@]}"
  if [ "$install" -eq 0 ]; then
    echo "scripts/test.sh: run those commands (or scripts/test.sh without --no-install), then again." >&2
    exit 1
  fi
  echo "scripts/test.sh: installing them" >&2
  debs=()
  for t in "${missing[@]}"; do
    case "$t" in
      kubectl) debs+=(kubernetes-client) ;;
      prometheus|promtool) debs+=(prometheus) ;;
      openapi-spec-validator) python3 -c 'import venv, ensurepip' 2>/dev/null || debs+=(python3-venv) ;;
    esac
  done
  if [ "${#debs[@]}" -gt 0 ]; then
    mapfile -t debs < <(printf '%s\n' "${debs[@]}" | sort -u)
    # shellcheck disable=SC2086 # SUDO is empty or "sudo "
    $SUDO apt-get update -qq >/dev/null || true
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null || true
  fi
  if printf '%s\n' "${missing[@]}" | grep -qx openapi-spec-validator; then
    { [ -x "$TOOLS/bin/pip" ] || python3 -m venv "$TOOLS"; } >/dev/null 2>&1 || true
    "$TOOLS/bin/pip" install -q --disable-pip-version-check "$OPENAPI_SPEC_VALIDATOR_PIN" >/dev/null 2>&1 || true
  fi
  mapfile -t missing < <(missing_tools)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: these could not be installed:" >&2
    list_missing "${missing[@]}"
    exit 1
  fi
fi

# Where each tool was found; the tests use exactly these.
for t in "${TOOL_NAMES[@]}"; do
  path="$(find_tool "$t")"
  echo "scripts/test.sh: $t: $path"
  export "$(env_var "$t")=$path"
done

if [ "$run" -eq 1 ]; then
  exec cargo test --workspace --locked "$@"
fi
