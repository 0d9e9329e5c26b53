#!/usr/bin/env bash
# The end-to-end benchmark of the trigger path (see benches/run.py for what
# each section measures). One command, loopback only, bounded in time:
#
#   benches/run.sh --quick   # under 4 minutes: trigger, growth to 10k, admission, 9 KB ingest,
#                            #   the simulator alone to 10k Jobs
#   benches/run.sh           # under 20 minutes: adds growth to 100k, 1 KB/100 KB/1 MB ingest and
#                            #   the simulator alone to 100k Jobs (memory, create cost; glibc's
#                            #   allocator and jemalloc)
#   benches/run.sh --only trigger,growth
#   benches/run.sh --only ingest --repeat 5   # each ingest server loaded 5 times (default 3), interleaved
#
# Servers run on CPU 0, wrk on CPU 1 (taskset). Installs wrk (Debian's
# package) and @octokit/webhooks (npm, into the target dir) when missing;
# the Node baseline is skipped with a message when Node is absent. Prints a
# table and writes benches/results/<date>.json with the machine description.
# ORCHESTRATOR_BIN=path runs another build of the service (e.g. an older one).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if [ "$(nproc)" -lt 2 ]; then
  echo "needs at least 2 CPUs (server on CPU 0, load generator on CPU 1)" >&2
  exit 1
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required (the trigger section's watch reader)" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  echo "installing wrk from the distribution's packages" >&2
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk) >/dev/null
fi

if ! ldconfig -p | grep -q 'libjemalloc\.so\.2 '; then
  echo "installing libjemalloc2 from the distribution's packages (the simulator's scale bench compares allocators)" >&2
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq libjemalloc2) >/dev/null \
    || echo "libjemalloc2 could not be installed: the simulator bench runs with glibc's allocator only" >&2
fi

node_dir=
if command -v node >/dev/null && command -v npm >/dev/null; then
  node_dir="$CARGO_TARGET_DIR/bench-node"
  if [ ! -d "$node_dir/node_modules/@octokit/webhooks" ]; then
    echo "installing @octokit/webhooks from npm into $node_dir" >&2
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund @octokit/webhooks@13 >/dev/null)
  fi
else
  echo "Node.js is not installed: skipping the @octokit/webhooks baseline" >&2
fi

echo "building the release binary, examples/ceiling_route, examples/naive_route and the simulator's scale bench" >&2
build=(cargo build --release --locked --bin orchestrator --example ceiling_route --example naive_route)
"${build[@]}" >/dev/null 2>&1 || "${build[@]}"
cargo bench --locked -p kube-api-sim --bench scale --no-run >/dev/null 2>&1 \
  || cargo bench --locked -p kube-api-sim --bench scale --no-run

exec python3 benches/run.py --node-dir "$node_dir" "$@"
