#!/usr/bin/env bash
# What reporting back to GitHub costs (see benches/github_calls.py): API
# calls per completed task with a token and as an App, installation tokens
# bought, and GitHub deliveries accepted per second with reporting off and
# on. Loopback only, about 2 minutes; writes
# benches/results/<date>-github-calls.json.
#
#   benches/github_calls.sh                          # 20 tasks, 600 deliveries
#   benches/github_calls.sh --tasks 50 --deliveries 2000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${ORCHESTRATOR_BIN:-}" ]; then
  cargo build --release --locked --quiet
fi
exec python3 benches/github_calls.py "$@"
