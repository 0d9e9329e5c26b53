#!/usr/bin/env python3
"""The delivery-recovery cycle's time for 1,000 listed deliveries, on loopback.

Runs the release binary against `orchestrator sim` and `orchestrator
github-sim` (the fake GitHub API, as a GitHub App). The fake's delivery log
is seeded (`POST /_sim/deliveries`) with N deliveries of which F failed
(500), each a labeled issue, and its redelivery target is the service's
webhook, so an asked-for redelivery really arrives signed and becomes a Job.
Then `orchestrator serve` starts as the App with
DELIVERY_RECOVERY_INTERVAL_SECONDS=1 and this reads its
`orchestrator_delivery_recovery_cycle_seconds` histogram:

  first    the first cycle: N deliveries listed (pages of 100), F
           redeliveries asked for, each answered after the service made
           its Job (the fake posts the payload before it answers 202)
  steady   the next cycles: N + F deliveries listed, nothing asked for

Usage: benches/delivery_recovery.sh [--deliveries N] [--failed F]
[--cycles K]. Writes benches/results/<date>-delivery-recovery.json.
"""

import argparse
import datetime
import json
import os
import subprocess
import time

from bench_support import PROCS, ROOT, binary, http, labeled, log, start, wait
SECRET = "bench-secret"
APP_ID = "424242"
KEY = os.path.join(ROOT, "tests/fixtures/keys/github-app-test.pem")
PUBLIC_KEY = os.path.join(ROOT, "tests/fixtures/keys/github-app-test.pub.pem")
SIM, GITHUB, SERVE = 17644, 17645, 17646














def cycle_histogram():
    _, text = http(f"http://127.0.0.1:{SERVE}/metrics")
    total = count = None
    for line in text.decode().splitlines():
        if line.startswith("orchestrator_delivery_recovery_cycle_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith("orchestrator_delivery_recovery_cycle_seconds_count"):
            count = int(float(line.split()[-1]))
    return total or 0.0, count or 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deliveries", type=int, default=1000)
    ap.add_argument("--failed", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=10)
    args = ap.parse_args()
    d = os.path.join(os.environ["CARGO_TARGET_DIR"], "bench-recovery")
    os.makedirs(d, exist_ok=True)
    kc = os.path.join(d, "kubeconfig")
    if os.path.exists(kc):
        os.remove(kc)
    r = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
         "cpus": os.cpu_count(), "binary": binary(), "deliveries": args.deliveries,
         "failed": args.failed}
    try:
        start([binary(), "sim", "--listen", f"127.0.0.1:{SIM}", "--kubeconfig-out", kc,
               "--default-run-seconds", "1", "--workers", "1"], {"RUST_LOG": "warn"})
        wait("the simulator", lambda: http(f"http://127.0.0.1:{SIM}/version")[0] == 200)
        start([binary(), "github-sim", "--listen", f"127.0.0.1:{GITHUB}",
               "--rate-limit-per-hour", "1000000", "--app-id", APP_ID,
               "--app-public-key", PUBLIC_KEY], {"RUST_LOG": "warn"})
        gh = f"http://127.0.0.1:{GITHUB}"
        wait("the fake GitHub API", lambda: http(f"{gh}/_sim/state")[0] == 200)
        stamp = int(time.time())
        every = max(1, args.deliveries // max(1, args.failed))
        seeds, failed = [], 0
        for i in range(args.deliveries):
            fail = failed < args.failed and i % every == 0
            failed += fail
            seeds.append({"event": "issues", "guid": f"bench-{stamp}-{i}",
                          "status_code": 500 if fail else 200,
                          "payload": labeled(1000 + i) if fail else {"action": "labeled"}})
        status, _ = http(f"{gh}/_sim/deliveries", json.dumps(seeds).encode(),
                         {"Content-Type": "application/json"}, "POST")
        assert status == 201, status
        status, _ = http(f"{gh}/_sim/deliveries/target", json.dumps(
            {"url": f"http://127.0.0.1:{SERVE}/webhook/github", "secret": SECRET}).encode(),
            {"Content-Type": "application/json"}, "PUT")
        assert status in (200, 204), status
        start([binary(), "serve"], {
            "KUBECONFIG": kc, "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(SERVE),
            "SERVER_WORKERS": "1", "GITHUB_WEBHOOK_SECRET": SECRET,
            "RATE_LIMIT_PER_REPO_PER_MINUTE": "1000000",
            "RATE_LIMIT_PER_SENDER_PER_MINUTE": "1000000",
            "KUBE_API_QPS": "100000", "KUBE_API_BURST": "100000",
            "GITHUB_API_URL": gh, "GITHUB_APP_ID": APP_ID, "GITHUB_APP_PRIVATE_KEY_FILE": KEY,
            "DELIVERY_RECOVERY_INTERVAL_SECONDS": "1",
            "DELIVERY_RECOVERY_MAX_PER_CYCLE": str(max(50, args.failed)),
            "RUST_LOG": "warn"}, os.path.join(d, "serve.log"))
        wait("the service", lambda: http(f"http://127.0.0.1:{SERVE}/ready")[0] == 200)
        first_sum, first_count = wait("the first cycle", lambda: (lambda h: h if h[1] >= 1 else None)(cycle_histogram()))
        if first_count != 1:
            raise SystemExit(f"missed the first cycle alone ({first_count} cycles at the first read)")
        total, count = wait(f"{args.cycles} more cycles",
                            lambda: (lambda h: h if h[1] >= 1 + args.cycles else None)(cycle_histogram()), 300)
        s = json.loads(http(f"{gh}/_sim/state")[1])
        attempts = sum(1 for q in s["requests"] if q["method"] == "POST" and q["path"].endswith("/attempts"))
        lists = sum(1 for q in s["requests"] if q["method"] == "GET" and q["path"].startswith("/app/hook/deliveries"))
        redelivered_ok = sum(1 for x in s["deliveries"] if x["redelivery"] and 200 <= x["status_code"] < 300)
        r["first_cycle_seconds"] = first_sum
        r["steady_cycle_seconds"] = (total - first_sum) / (count - 1)
        r["steady_cycles"] = count - 1
        r["redelivery_requests"] = attempts
        r["redeliveries_answered_2xx"] = redelivered_ok
        r["listing_requests"] = lists
        log(f"first cycle ({args.deliveries} listed, {attempts} redeliveries asked for, "
            f"{redelivered_ok} answered 2xx): {first_sum * 1000:.0f} ms; steady cycle "
            f"({args.deliveries + attempts} listed, none asked for): "
            f"{r['steady_cycle_seconds'] * 1000:.0f} ms over {count - 1} cycles")
        assert attempts == failed, (attempts, failed)
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    out = os.path.join(ROOT, "benches/results",
                       datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S") + "-delivery-recovery.json")
    with open(out, "w") as f:
        json.dump(r, f, indent=2)
    print(json.dumps(r, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
