"""What the Python benches share: the release binary, loopback HTTP,
bounded waits, the processes they start (killed at the end), and the
fixture payload of a labeled issue."""

import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every process a bench started, for stop_all().
PROCS = []


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def binary():
    return os.environ.get("ORCHESTRATOR_BIN") or os.path.join(
        os.environ["CARGO_TARGET_DIR"], "release/orchestrator")


def http(url, body=None, headers=None, method=None, timeout=30):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait(what, check, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            v = check()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def start(args, env=None, log_path=None):
    e = dict(os.environ)
    e.update(env or {})
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(args, env=e, stdout=subprocess.DEVNULL, stderr=out)
    PROCS.append(p)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.kill()


def labeled(issue):
    """tests/fixtures/github/issues/labeled.json labeled `agent` on `issue`."""
    with open(os.path.join(ROOT, "tests/fixtures/github/issues/labeled.json")) as f:
        v = json.load(f)
    v["label"]["name"] = "agent"
    v["issue"]["number"] = issue
    return v
