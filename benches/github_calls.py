#!/usr/bin/env python3
"""What reporting back to GitHub costs, measured on loopback.

Runs the release binary three ways against `orchestrator sim` and
`orchestrator github-sim` (the fake GitHub API), each section in the same
run so the ratios compare like with like:

  calls     N labeled issues, one task each, run to completion with
            reporting by token: GitHub API calls per completed task, by
            operation (from the fake's request log).
  app       the same as a GitHub App: installation tokens bought for the
            run's reports (and so per hour at that pace; tokens live an hour).
  trigger   GitHub deliveries accepted and seen by the Job watch per second,
            C concurrent senders, with reporting off and on (the fake
            answering): the ratio on/off is reporting's cost on the trigger
            path.

Usage: benches/github_calls.sh [--tasks N]
[--deliveries N]. Writes benches/results/<date>-github-calls.json.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import time

from bench_support import ROOT, binary, http, labeled, log, start, stop_all, wait
SECRET = "bench-secret"
TOKEN = "bench-github-token"
APP_ID = "424242"
KEY = os.path.join(ROOT, "tests/fixtures/keys/github-app-test.pem")
PUBLIC_KEY = os.path.join(ROOT, "tests/fixtures/keys/github-app-test.pub.pem")












def stop(p):
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()


def start_sim(d, port, run_seconds):
    kc = os.path.join(d, f"kubeconfig-{port}")
    if os.path.exists(kc):
        os.remove(kc)
    p = start([binary(), "sim", "--listen", f"127.0.0.1:{port}", "--kubeconfig-out", kc,
               "--default-run-seconds", str(run_seconds), "--workers", "1"], {"RUST_LOG": "warn"})
    wait("the simulator", lambda: http(f"http://127.0.0.1:{port}/version")[0] == 200)
    return p, kc


def start_github(port, app):
    args = [binary(), "github-sim", "--listen", f"127.0.0.1:{port}", "--rate-limit-per-hour", "1000000"]
    if app:
        args += ["--app-id", APP_ID, "--app-public-key", PUBLIC_KEY]
    else:
        args += ["--token", TOKEN]
    p = start(args, {"RUST_LOG": "warn"})
    wait("the fake GitHub API", lambda: http(f"http://127.0.0.1:{port}/_sim/state")[0] == 200)
    return p


def start_serve(d, port, kc, extra):
    env = {
        "KUBECONFIG": kc,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SERVER_WORKERS": "1",
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "RATE_LIMIT_PER_REPO_PER_MINUTE": "1000000",
        "RATE_LIMIT_PER_SENDER_PER_MINUTE": "1000000",
        "KUBE_API_QPS": "100000",
        "KUBE_API_BURST": "100000",
        "MAX_CONCURRENT_JOBS": "50",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "RUST_LOG": "warn",
    }
    env.update(extra)
    p = start([binary(), "serve"], env, os.path.join(d, f"serve-{port}.log"))
    wait("the service", lambda: http(f"http://127.0.0.1:{port}/ready")[0] == 200)
    return p




def deliver(port, issue, delivery):
    body = json.dumps(labeled(issue)).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return http(f"http://127.0.0.1:{port}/webhook/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig}, "POST")


def state(gh_port):
    return json.loads(http(f"http://127.0.0.1:{gh_port}/_sim/state")[1])


def succeeded_comments(gh_port):
    return sum(1 for c in state(gh_port)["comments"] if "— succeeded" in c["body"])


def operation(req):
    m, p = req["method"], req["path"]
    if p.endswith("/reactions"):
        return "reaction"
    if m == "POST" and p.endswith("/comments"):
        return "comment_create"
    if m == "GET" and p.endswith("/comments"):
        return "comment_list"
    if m == "PATCH" and "/issues/comments/" in p:
        return "comment_edit"
    if "access_tokens" in p:
        return "installation_token"
    return f"{m} other"


def calls_section(d, tasks, app):
    sim, kc = start_sim(d, 17444, 1.0)
    gh = start_github(17445, app)
    # Delivery recovery (on by default for an App) lists the App's
    # deliveries: not a report's cost, so off here (benches/delivery_recovery.py).
    creds = ({"GITHUB_APP_ID": APP_ID, "GITHUB_APP_PRIVATE_KEY_FILE": KEY,
              "DELIVERY_RECOVERY_INTERVAL_SECONDS": "0"} if app
             else {"GITHUB_TOKEN": TOKEN})
    serve = start_serve(d, 17446, kc, {"GITHUB_API_URL": "http://127.0.0.1:17445", **creds})
    t0 = time.time()
    stamp = int(t0)
    for i in range(tasks):
        status, _ = deliver(17446, 100 + i, f"bench-{stamp}-{i}")
        assert status == 202, status
    wait(f"{tasks} succeeded reports", lambda: succeeded_comments(17445) >= tasks, 300)
    took = time.time() - t0
    s = state(17445)
    per = {}
    for r in s["requests"]:
        op = operation(r)
        per[op] = per.get(op, 0) + 1
    res = {
        "tasks": tasks,
        "seconds": took,
        "calls": sum(per.values()),
        "calls_per_task": sum(v for k, v in per.items() if k != "installation_token") / tasks,
        "by_operation_per_task": {k: v / tasks for k, v in sorted(per.items())},
        "comments": len(s["comments"]),
        "installation_tokens": s["counts"]["installation_tokens"],
    }
    for p in (serve, gh, sim):
        stop(p)
    return res


def seen(port):
    status, body = http(f"http://127.0.0.1:{port}/metrics")
    for line in body.decode().splitlines():
        if line.startswith("orchestrator_jobs_tracked "):
            return int(float(line.split()[1]))
    return 0


def trigger_section(d, deliveries, conns, reporting, port):
    sim, kc = start_sim(d, port, 3600.0)
    extra = {}
    gh = None
    if reporting:
        gh = start_github(port + 1, False)
        extra = {"GITHUB_API_URL": f"http://127.0.0.1:{port + 1}", "GITHUB_TOKEN": TOKEN}
    serve = start_serve(d, port + 2, kc, extra)
    stamp = f"{int(time.time())}-{port}"
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(conns) as ex:
        answers = list(ex.map(lambda i: deliver(port + 2, 10_000 + i, f"t-{stamp}-{i}")[0], range(deliveries)))
    accepted = sum(1 for a in answers if a == 202)
    wait("the watch to see every Job", lambda: seen(port + 2) >= accepted, 120)
    took = time.time() - t0
    res = {"deliveries": deliveries, "accepted": accepted, "seconds": took,
           "accepted_and_seen_per_s": accepted / took}
    if gh:
        res["comments_made_meanwhile"] = len(state(port + 1)["comments"])
    for p in (serve, gh, sim):
        if p:
            stop(p)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--deliveries", type=int, default=600)
    ap.add_argument("--conns", type=int, default=16)
    args = ap.parse_args()
    d = os.path.join(os.environ["CARGO_TARGET_DIR"], "bench-github")
    os.makedirs(d, exist_ok=True)
    r = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
         "cpus": os.cpu_count()}
    try:
        r["calls_token"] = calls_section(d, args.tasks, app=False)
        log(f"token: {r['calls_token']['calls_per_task']:.2f} calls per task "
            f"{r['calls_token']['by_operation_per_task']}")
        r["calls_app"] = calls_section(d, args.tasks, app=True)
        a = r["calls_app"]
        log(f"app: {a['calls_per_task']:.2f} calls per task, {a['installation_tokens']} installation "
            f"token(s) for {a['tasks']} tasks in {a['seconds']:.1f} s")
        # Off, on, off again: the two offs bound the noise.
        offs, ons = [], []
        for i, on in enumerate([False, True, False, True]):
            res = trigger_section(d, args.deliveries, args.conns, on, 17500 + 10 * i)
            (ons if on else offs).append(res)
            log(f"trigger, reporting {'on ' if on else 'off'}: {res['accepted_and_seen_per_s']:.0f}/s")
        off = sum(x["accepted_and_seen_per_s"] for x in offs) / len(offs)
        on = sum(x["accepted_and_seen_per_s"] for x in ons) / len(ons)
        r["trigger"] = {"off": offs, "on": ons, "off_mean_per_s": off, "on_mean_per_s": on,
                        "ratio_on_to_off": on / off if off else None,
                        "off_spread": (max(x["accepted_and_seen_per_s"] for x in offs)
                                       / min(x["accepted_and_seen_per_s"] for x in offs))}
        log(f"trigger ratio on/off {r['trigger']['ratio_on_to_off']:.3f} "
            f"(off runs differ by {r['trigger']['off_spread']:.3f}x)")
    finally:
        stop_all()
    out = os.path.join(ROOT, "benches/results",
                       datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S") + "-github-calls.json")
    with open(out, "w") as f:
        json.dump(r, f, indent=2)
    print(json.dumps({k: v for k, v in r.items() if k != "trigger"} | {"trigger_ratio": r["trigger"]["ratio_on_to_off"]}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
