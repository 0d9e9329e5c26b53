#!/usr/bin/env bash
# What an open dashboard log follow costs the service (see
# benches/log_follow.py): resident memory and CPU per open follow, and CPU
# per relayed line, against an idle baseline measured before and after in
# the same run. Loopback only, about a minute; writes
# benches/results/<date>-log-follow.json.
#
#   benches/log_follow.sh                        # 32 follows over 8 Jobs
#   benches/log_follow.sh --follows 8 --window 20
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${ORCHESTRATOR_BIN:-}" ]; then
  cargo build --release --locked --quiet
fi
exec python3 benches/log_follow.py "$@"
