#!/usr/bin/env python3
"""Driver of benches/soak.sh: mixed traffic from every source (see
load/mix.lua) at half of the peak the same mix reaches, for a while,
sampling the service's RSS every 10 s. Reports start/end/max and the
slope: memory must stay flat (the dedup cache and events log are bounded;
finished Jobs leave with their TTL)."""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def slope_per_min(samples):
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    n = len(samples)
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    var = sum((x - mx) ** 2 for x, _ in samples) or 1.0
    return sum((x - mx) * (y - my) for x, y in samples) / var * 60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    d = os.path.join(os.environ["CARGO_TARGET_DIR"], "bench")
    run.prepare(d)
    fixture = json.load(open(os.path.join(run.ROOT, "tests/fixtures/github/issue_comment/created.json")))
    fixture["comment"]["body"] = "/agent please fix this"
    fixture["comment"]["author_association"] = "OWNER"
    body = json.dumps(fixture, separators=(",", ":")).encode()
    os.makedirs(os.path.join(d, "dup"), exist_ok=True)
    open(os.path.join(d, "dup/body.json"), "wb").write(body)
    sig = hmac.new(run.SECRET.encode(), body, hashlib.sha256).hexdigest()
    open(os.path.join(d, "dup/signature"), "w").write("sha256=" + sig)
    alert = open(os.path.join(run.ROOT, "tests/fixtures/alertmanager/prometheus-msteams-prom_post_request.firing.json")).read()
    open(os.path.join(d, "alert.json"), "w").write(alert)
    open(os.path.join(d, "grafana_auth"), "w").write("Basic " + base64.b64encode(b"grafana:soak-pass").decode())
    open(os.path.join(d, "pm_token"), "w").write("pm-soak-token-0123456789")
    try:
        sim, kc = run.start_sim(d, 16447, 1.0, "soak")
        serve = run.start_serve(d, 18096, kc, "soak", {
            "MAX_CONCURRENT_JOBS": "50", "JOB_TTL_SECONDS": "30",
            "API_TOKENS": f"cli={run.TOKEN},pm-agent=pm-soak-token-0123456789",
            "GRAFANA_BASIC_AUTH": "grafana:soak-pass"})
        url = "http://127.0.0.1:18096"
        script = os.path.join(run.ROOT, "benches/load/mix.lua")
        peak = run.wrk(url, script, 5, env={"BENCH_DIR": d})
        pace = max(1, int(32 * 1000 / (peak["rps"] / 2))) if peak["rps"] else 100
        run.log(f"soak: peak {peak['rps']:.0f} req/s; pacing to ~{32 * 1000 / pace:.0f} req/s for {args.minutes} min")
        secs = int(args.minutes * 60)
        # About 3 new tasks a second (2 CLI, 1 PM), well under what 50
        # slots of 1 s pods drain.
        every = max(100, int(32 * 1000 / pace))
        load = subprocess.Popen(["taskset", "-c", run.LOAD_CPU, "wrk", "-t1", "-c32", f"-d{secs}s", "--latency",
                                 "-s", script, url],
                                env=dict(os.environ, BENCH_DIR=d, RATE_DELAY_MS=str(pace), TASK_EVERY=str(every)),
                                stdout=subprocess.PIPE, text=True)
        samples = []
        tracked = []
        start = time.time()
        while load.poll() is None:
            samples.append((time.time() - start, serve.rss_mb()))
            jobs = run.metrics(18096)
            tracked.append(jobs.get("orchestrator_jobs_tracked"))
            queued = jobs.get('orchestrator_jobs{state="queued"}')
            run.log(f"soak: t={samples[-1][0]:.0f}s RSS {samples[-1][1]:.1f} MB, tracked Jobs {tracked[-1]}, "
                    f"queued {queued}")
            deadline = time.time() + 10
            while time.time() < deadline and load.poll() is None:
                time.sleep(0.5)
        samples.append((time.time() - start, serve.rss_mb()))
        out = load.stdout.read()
        m = run.metrics(18096)
    finally:
        run.stop_all()
    xs = [s[0] for s in samples]
    ys = [s[1] for s in samples]
    slope = slope_per_min(samples)
    # After the first 2 minutes finished Jobs leave with their TTL (30 s) as
    # fast as new ones come: the steady state, where a leak would show.
    steady = [s for s in samples if s[0] >= 120] or samples
    steady_slope = slope_per_min(steady)
    decisions = {k: v for k, v in m.items() if k.startswith("orchestrator_webhook_decisions")}
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": run.machine(),
        "minutes": args.minutes,
        "peak_rps": peak["rps"],
        "wrk": out,
        "rss_mb": {"start": ys[0], "end": ys[-1], "max": max(ys), "slope_mb_per_min": slope,
                   "steady_slope_mb_per_min": steady_slope},
        "samples": samples,
        "tracked_jobs": tracked,
        "decisions": decisions,
    }
    print(f"soak {args.minutes} min at ~half of {peak['rps']:.0f} req/s: RSS start {ys[0]:.1f} MB, end {ys[-1]:.1f} MB, "
          f"max {max(ys):.1f} MB, slope {slope:+.2f} MB/min ({steady_slope:+.2f} MB/min after 2 min); tracked Jobs {tracked[0]} -> {tracked[-1]} "
          f"(max {max(t or 0 for t in tracked)})")
    for k, v in sorted(decisions.items()):
        print(f"  {k} {v:.0f}")
    os.makedirs(os.path.join(run.ROOT, "benches/results"), exist_ok=True)
    path = os.path.join(run.ROOT, "benches/results", "soak-" + datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S") + ".json")
    json.dump(res, open(path, "w"), indent=2)
    print(f"written {path}")


if __name__ == "__main__":
    main()
