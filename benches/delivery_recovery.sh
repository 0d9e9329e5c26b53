#!/usr/bin/env bash
# The delivery-recovery cycle's time for 1,000 listed deliveries (see
# benches/delivery_recovery.py): the first cycle (listing, 50 redeliveries
# that become Jobs) and the steady one (listing only). Loopback only, under
# a minute; writes benches/results/<date>-delivery-recovery.json.
#
#   benches/delivery_recovery.sh                       # 1000 listed, 50 failed
#   benches/delivery_recovery.sh --deliveries 5000 --failed 100
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${ORCHESTRATOR_BIN:-}" ]; then
  cargo build --release --locked --quiet
fi
exec python3 benches/delivery_recovery.py "$@"
