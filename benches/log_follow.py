"""What an open dashboard log follow costs the service, measured on loopback.

Runs the release binary's service against `orchestrator sim`, whose pods
print a progress line every --line-interval seconds while they run (long
enough to outlast the bench). With --jobs Jobs running it measures the
service process (from /proc: user+system CPU time and resident memory) over
a window of --window seconds three ways, in the same run:

  idle      no follow open: the baseline (watch, lease, sweeps).
  follows   F follows open (`GET /ui/jobs/{name}/log/stream`, one per
            dashboard session, spread over the Jobs), each line relayed
            from the pod's log to the browser as a server-sent event.
  idle      again after closing them: the two idles bound the noise.

Reported per open follow: resident memory (KiB) and CPU (ms per second),
and the CPU per relayed line (µs). F defaults to 32, the dashboard's
bound on open follows (MAX_FOLLOWS).

Usage: benches/log_follow.sh [--follows F] [--jobs J] [--window S]
[--line-interval S]   (0: quiet pods, the cost of a follow that waits)
Writes benches/results/<date>-log-follow.json.
"""

import argparse
import datetime
from http.client import HTTPConnection
import json
import os
import re
import socket
import threading
import time
import urllib.parse

from bench_support import ROOT, binary, http, log, start, stop_all, wait

CLI = "bench-follow-cli-token-0123456789"
VIEWER = "bench-follow-viewer-token-0123456789"
SIM_PORT, SERVE_PORT = 17464, 17465
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The fields after the parenthesised command name.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def running_jobs():
    status, body = http(f"http://127.0.0.1:{SERVE_PORT}/api/v1/jobs?state=running&limit=500",
                        headers={"Authorization": f"Bearer {CLI}"})
    if status != 200:
        return []
    return [j["name"] for j in json.loads(body)["items"]]


def login():
    """A new dashboard session (one follow each): its cookie."""
    c = HTTPConnection("127.0.0.1", SERVE_PORT, timeout=30)
    c.request("POST", "/ui/login", urllib.parse.urlencode({"token": VIEWER, "next": "/ui/"}),
              {"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie") or ""
    m = re.match(r"(orchestrator_session=[^;]+)", cookie)
    if r.status != 303 or not m:
        raise SystemExit(f"login answered {r.status} without a session cookie")
    return m.group(1)


class Follow(threading.Thread):
    """Reads one follow's server-sent events, counting the data lines."""

    def __init__(self, job, cookie):
        super().__init__(daemon=True)
        self.job, self.cookie = job, cookie
        self.lines = 0
        self.stop = False
        self.error = None
        self.conn = None

    def run(self):
        try:
            self.conn = HTTPConnection("127.0.0.1", SERVE_PORT, timeout=60)
            self.conn.request("GET", f"/ui/jobs/{self.job}/log/stream",
                              headers={"Cookie": self.cookie, "Accept": "text/event-stream"})
            r = self.conn.getresponse()
            if r.status != 200:
                self.error = f"status {r.status}"
                return
            while not self.stop:
                line = r.fp.readline()
                if not line:
                    self.error = "the stream ended"
                    return
                if line.startswith(b"event: end"):
                    self.error = "the follow ended"
                    return
                if line.startswith(b"data: "):
                    self.lines += 1
        except OSError as e:
            if not self.stop:
                self.error = str(e)

    def close(self):
        self.stop = True
        if self.conn is not None and self.conn.sock is not None:
            # shutdown, not only close: the response's file still holds the
            # descriptor, and the reading thread must see the end.
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.sock.close()


def window(pid, seconds, follows=()):
    c0, l0, t0 = cpu_seconds(pid), sum(f.lines for f in follows), time.time()
    time.sleep(seconds)
    c1, l1, t1 = cpu_seconds(pid), sum(f.lines for f in follows), time.time()
    return {"seconds": t1 - t0, "cpu_seconds": c1 - c0, "cpu_ms_per_s": 1000 * (c1 - c0) / (t1 - t0),
            "rss_kib": rss_kib(pid), "lines": l1 - l0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--follows", type=int, default=32)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--line-interval", type=float, default=0.05)
    args = ap.parse_args()
    d = os.path.join(os.environ["CARGO_TARGET_DIR"], "bench-follow")
    os.makedirs(d, exist_ok=True)
    kc = os.path.join(d, "kubeconfig")
    if os.path.exists(kc):
        os.remove(kc)
    r = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "cpus": os.cpu_count(),
         "follows": args.follows, "jobs": args.jobs, "line_interval_s": args.line_interval}
    try:
        start([binary(), "sim", "--listen", f"127.0.0.1:{SIM_PORT}", "--kubeconfig-out", kc,
               "--default-run-seconds", "3600", "--log-every-seconds", str(args.line_interval),
               "--workers", "1"], {"RUST_LOG": "warn"})
        wait("the simulator", lambda: http(f"http://127.0.0.1:{SIM_PORT}/version")[0] == 200)
        serve = start([binary(), "serve"], {
            "KUBECONFIG": kc, "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(SERVE_PORT),
            "SERVER_WORKERS": "1", "ALLOW_INSECURE_NO_SIGNATURE": "true",
            "API_TOKENS": f"cli={CLI},viewer={VIEWER}",
            "DASHBOARD_SESSION_SECRET": "bench-follow-session-secret-of-32-bytes",
            "MAX_CONCURRENT_JOBS": str(args.jobs), "SHUTDOWN_DRAIN_SECONDS": "0",
            "RUST_LOG": "warn"}, os.path.join(d, "serve.log"))
        wait("the service", lambda: http(f"http://127.0.0.1:{SERVE_PORT}/ready")[0] == 200)
        for i in range(args.jobs):
            status, body = http(f"http://127.0.0.1:{SERVE_PORT}/api/v1/tasks",
                                json.dumps({"title": f"follow bench {i}", "prompt": "print progress",
                                            "repository": "acme/web"}).encode(),
                                {"Authorization": f"Bearer {CLI}", "Content-Type": "application/json"},
                                "POST")
            assert status == 202, (status, body)
        wait(f"{args.jobs} running Jobs", lambda: len(running_jobs()) >= args.jobs, 120)
        jobs = running_jobs()
        cookies = [login() for _ in range(args.follows)]
        # Let the start settle (first scrape of caches, the lease's first
        # renewals) before the baseline.
        time.sleep(2)
        r["idle_before"] = window(serve.pid, args.window)
        log(f"idle: {r['idle_before']['cpu_ms_per_s']:.1f} ms CPU/s, {r['idle_before']['rss_kib']} KiB")
        follows = [Follow(jobs[i % len(jobs)], c) for i, c in enumerate(cookies)]
        for f in follows:
            f.start()
        wait(f"{args.follows} follows relaying lines",
             lambda: all(f.lines > 0 for f in follows) or any(f.error for f in follows), 60)
        errors = [f.error for f in follows if f.error]
        if errors:
            raise SystemExit(f"follows failed: {errors[:3]}")
        r["following"] = window(serve.pid, args.window, follows)
        if any(f.error for f in follows):
            raise SystemExit(f"a follow ended during the window: {[f.error for f in follows if f.error][:3]}")
        log(f"{args.follows} follows: {r['following']['cpu_ms_per_s']:.1f} ms CPU/s, "
            f"{r['following']['rss_kib']} KiB, {r['following']['lines']} lines relayed")
        for f in follows:
            f.close()
        for f in follows:
            f.join(10)
        r["idle_after"] = window(serve.pid, args.window)
        log(f"idle again: {r['idle_after']['cpu_ms_per_s']:.1f} ms CPU/s, {r['idle_after']['rss_kib']} KiB")
    finally:
        stop_all()
    base_cpu = (r["idle_before"]["cpu_ms_per_s"] + r["idle_after"]["cpu_ms_per_s"]) / 2
    f = r["following"]
    extra_cpu = f["cpu_ms_per_s"] - base_cpu
    r["per_follow"] = {
        "rss_kib": (f["rss_kib"] - r["idle_before"]["rss_kib"]) / args.follows,
        "cpu_ms_per_s": extra_cpu / args.follows,
        "lines_per_s": f["lines"] / f["seconds"] / args.follows,
    }
    r["cpu_us_per_line"] = (1000 * extra_cpu * f["seconds"] / f["lines"]) if f["lines"] else None
    r["idle_spread_ms_per_s"] = abs(r["idle_before"]["cpu_ms_per_s"] - r["idle_after"]["cpu_ms_per_s"])
    out = os.path.join(ROOT, "benches/results",
                       datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S") + "-log-follow.json")
    with open(out, "w") as fh:
        json.dump(r, fh, indent=2)
    print(json.dumps({"per_follow": r["per_follow"], "cpu_us_per_line": r["cpu_us_per_line"],
                      "idle_spread_ms_per_s": r["idle_spread_ms_per_s"]}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
