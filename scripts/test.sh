#!/usr/bin/env bash
# The whole test suite, set-up included: on a fresh Debian/Ubuntu machine
# with only Rust, finds every tool the tests run (and says where), lists
# every missing one at once with the command that installs it, installs
# them, and only then compiles and runs `cargo test --workspace --locked`.
#
#   scripts/test.sh cargo test --workspace --locked
#                                    find or install the tools, then run the
#                                    command (the README's and CI's; it is
#                                    also what runs when none is given)
#   scripts/test.sh --no-install     list what is missing and stop (exit 1)
#   scripts/test.sh --tools-only     find or install the tools, run nothing
#   scripts/test.sh cargo test --test openapi   any other command, with the tools
#
# Once the tools are there, `cargo test --workspace --locked` is the inner
# loop. kubectl (the release binary, checksum-verified: Debian's own
# kubernetes-client is too old) and the Python tool go into
# ORCHESTRATOR_CI_TOOLS (default ~/.cache/orchestrator-ci-tools, a
# virtualenv .ci/run shares); prometheus and promtool, chromium and
# chromedriver (the dashboard's browser test) come from apt; axe-core (the
# accessibility checks the browser test injects) from npm into
# ORCHESTRATOR_CI_TOOLS/axe.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ORCHESTRATOR_CI_TOOLS:-$HOME/.cache/orchestrator-ci-tools}"
OPENAPI_SPEC_VALIDATOR_PIN="openapi-spec-validator==0.9.0"
KUBECTL_VERSION="v1.32.4"   # any 1.27 or later works; this one is installed
KUBECTL_MIN_MINOR=27
case "$(uname -m)" in aarch64|arm64) ARCH=arm64 ;; *) ARCH=amd64 ;; esac
KUBECTL_URL="https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/$ARCH/kubectl"
AXE_CORE_PIN="axe-core@4.10.3"
AXE_CORE_JS_PATH="$TOOLS/axe/node_modules/axe-core/axe.min.js"
install=1 run=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0 ;;
    --tools-only) run=0 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "scripts/test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done

# Root installs directly; elsewhere through sudo.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo "; fi

# What each tool is for, the variable that may name it, and its install line.
TOOL_NAMES=(kubectl prometheus promtool openapi-spec-validator chromium chromedriver axe-core)
purpose() {
  case "$1" in
    kubectl) echo "kubectl $KUBECTL_MIN_MINOR+ against the simulator" ;;
    prometheus) echo "the scrape test" ;;
    promtool) echo "the alert-rule checks" ;;
    openapi-spec-validator) echo "validates the served OpenAPI document" ;;
    chromium|chromedriver) echo "the dashboard's browser test" ;;
    axe-core) echo "the dashboard's accessibility checks" ;;
  esac
}
env_var() {
  case "$1" in
    kubectl) echo KUBECTL ;;
    prometheus) echo PROMETHEUS ;;
    promtool) echo PROMTOOL ;;
    openapi-spec-validator) echo OPENAPI_SPEC_VALIDATOR ;;
    chromium) echo CHROMIUM ;;
    chromedriver) echo CHROMEDRIVER ;;
    axe-core) echo AXE_CORE_JS ;;
  esac
}
install_line() {
  case "$1" in
    kubectl) echo "mkdir -p $TOOLS/bin && curl -fsSLo $TOOLS/bin/kubectl $KUBECTL_URL && echo \"\$(curl -fsSL $KUBECTL_URL.sha256)  $TOOLS/bin/kubectl\" | sha256sum -c && chmod +x $TOOLS/bin/kubectl" ;;
    prometheus|promtool) echo "${SUDO}apt-get install -y prometheus" ;;
    openapi-spec-validator) echo "python3 -m venv $TOOLS && $TOOLS/bin/pip install $OPENAPI_SPEC_VALIDATOR_PIN" ;;
    chromium) echo "${SUDO}apt-get install -y chromium" ;;
    chromedriver) echo "${SUDO}apt-get install -y chromium-driver" ;;
    axe-core) echo "npm install --prefix $TOOLS/axe $AXE_CORE_PIN" ;;
  esac
}

usable() { # NAME PATH: whether PATH is a NAME the tests can use
  if [ "$1" = axe-core ]; then [ -f "$2" ]; return; fi
  [ -x "$2" ] || return 1
  if [ "$1" = kubectl ]; then
    local minor
    minor="$("$2" version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n1)"
    [ -n "$minor" ] && [ "$minor" -ge "$KUBECTL_MIN_MINOR" ]
  fi
}

find_tool() { # NAME: prints its path, or nothing
  local var value candidate
  var="$(env_var "$1")"
  value="${!var:-}"
  if [ -n "$value" ]; then
    if usable "$1" "$value"; then echo "$value"; fi
    return 0
  fi
  if [ "$1" = axe-core ]; then
    if usable axe-core "$AXE_CORE_JS_PATH"; then echo "$AXE_CORE_JS_PATH"; fi
    return 0
  fi
  for candidate in "$(command -v "$1" 2>/dev/null || true)" "$TOOLS/bin/$1"; do
    if [ -n "$candidate" ] && usable "$1" "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 0
}

install_kubectl() { # the release binary into $TOOLS/bin, checksum-verified
  local tmp
  mkdir -p "$TOOLS/bin"
  tmp="$(mktemp "$TOOLS/bin/.kubectl.XXXXXX")"
  if curl -fsSLo "$tmp" "$KUBECTL_URL" &&
    echo "$(curl -fsSL "$KUBECTL_URL.sha256")  $tmp" | sha256sum -c --status; then
    chmod +x "$tmp" && mv "$tmp" "$TOOLS/bin/kubectl"
  else
    rm -f "$tmp"
    echo "scripts/test.sh: could not download kubectl from $KUBECTL_URL" >&2
  fi
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
      kubectl) command -v curl >/dev/null 2>&1 || debs+=(curl ca-certificates) ;;
      prometheus|promtool) debs+=(prometheus) ;;
      chromium) debs+=(chromium) ;;
      chromedriver) debs+=(chromium-driver) ;;
      axe-core) command -v npm >/dev/null 2>&1 || debs+=(npm) ;;
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
  if printf '%s\n' "${missing[@]}" | grep -qx kubectl; then install_kubectl; fi
  if printf '%s\n' "${missing[@]}" | grep -qx axe-core; then
    mkdir -p "$TOOLS/axe"
    npm install --prefix "$TOOLS/axe" --no-audit --no-fund --silent "$AXE_CORE_PIN" >/dev/null 2>&1 || true
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
  if [ $# -eq 0 ]; then set -- cargo test --workspace --locked; fi
  exec "$@"
fi
