#!/usr/bin/env bash
# Webhook load bench: the naive route (HMAC + serde_json::Value) and
# `orchestrator serve` loaded the same way — server pinned to CPU 0 with one
# HTTP worker, wrk pinned to CPU 1 — on a minified ~9 KB issue_comment
# delivery that is ignored after verification (no `/agent` command).
# Prints requests/s of each and the ratio. Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 1; }
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-32}"
export LOAD_DIR="${LOAD_DIR:-$PWD/target/load}"
export GITHUB_WEBHOOK_SECRET="load-bench-secret"
mkdir -p "$LOAD_DIR"
python3 - "$LOAD_DIR" <<'PY'
import hashlib, hmac, json, os, sys
d = sys.argv[1]
body = json.dumps(json.load(open("tests/fixtures/github/issue_comment/created.json")), separators=(",", ":")).encode()
open(os.path.join(d, "body.json"), "wb").write(body)
sig = hmac.new(os.environ["GITHUB_WEBHOOK_SECRET"].encode(), body, hashlib.sha256).hexdigest()
open(os.path.join(d, "signature"), "w").write("sha256=" + sig)
open(os.path.join(d, "event"), "w").write("issue_comment")
print(f"body: {len(body)} bytes", file=sys.stderr)
PY
cargo build --release --bin orchestrator --example naive_route >/dev/null 2>&1

wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server did not start: $1" >&2; return 1; }
run_wrk() { taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s benches/load/post.lua "$1" | awk '/Requests\/sec/ {print $2}'; }

NAIVE_LISTEN=127.0.0.1:8090 taskset -c 0 target/release/examples/naive_route >/dev/null 2>&1 &
naive=$!
trap 'kill $naive $orch 2>/dev/null || true' EXIT
orch=
wait_http http://127.0.0.1:8090/
naive_rps=$(run_wrk http://127.0.0.1:8090/webhook/github)
kill $naive; wait $naive 2>/dev/null || true

(cd "$LOAD_DIR" && SERVER_HOST=127.0.0.1 SERVER_PORT=8091 SERVER_WORKERS=1 RUST_LOG=warn \
  taskset -c 0 "$OLDPWD/target/release/orchestrator" serve --embedded-cluster >/dev/null 2>&1) &
orch=$!
wait_http http://127.0.0.1:8091/health
orch_rps=$(run_wrk http://127.0.0.1:8091/webhook/github)

echo "naive route (HMAC + Value parse): ${naive_rps} req/s"
echo "orchestrator /webhook/github:     ${orch_rps} req/s"
python3 -c "print(f'ratio: {float(\"$orch_rps\")/float(\"$naive_rps\"):.2f}x')"
