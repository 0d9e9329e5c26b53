#!/usr/bin/env bash
# Soak (on demand, 10 minutes by default): mixed traffic from every source
# at half of peak load, 5 % duplicates and 1 % bad signatures; the
# service's RSS sampled every 10 s; prints start/end/max and the slope.
#   benches/soak.sh [--minutes N]
# Same set-up as benches/run.sh (servers on CPU 0, wrk on CPU 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release --locked --bin orchestrator >/dev/null 2>&1 || cargo build --release --locked --bin orchestrator
exec python3 benches/soak.py "$@"
