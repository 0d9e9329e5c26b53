#!/usr/bin/env python3
"""Driver of benches/run.sh: the end-to-end benchmark of the trigger path.

Loopback only. Servers (the simulator, `orchestrator serve`, the baselines)
are pinned to CPU 0, the load generator (wrk) to CPU 1. Prints a table and
writes benches/results/<date>.json with the machine's description.

Sections (all in one run, so ratios compare like with like):
  ingest     GitHub deliveries the service ignores: `issue_comment`s
             without a command of 1 KB, 9 KB, 100 KB and 1 MB (no JSON
             parsed), and a 9 KB `issues.labeled` with a label no rule
             routes (decoded, then ignored). The service vs the ceiling
             (examples/ceiling_route.rs: body, HMAC, 202, nothing else; with
             the service binary's allocator, jemalloc) vs
             examples/naive_route.rs (HMAC + serde_json::Value, the
             system allocator, as the usual receiver) vs
             @octokit/webhooks (Node): req/s at peak, the service's p99 at
             peak and at half of its peak, and each server's CPU time per
             request. Each server is loaded `--repeat` times (3), interleaved,
             and its median run kept; the 100 KB and 1 MB rows use 16
             connections (the service's in-flight limit per client address).
  trigger    tasks/s the service accepts *and* its Job watch has seen vs
             the limit: raw creates/s of the service's own Job (captured
             from one task) with a Job watch open, on the same core (raw
             creates of a small Job without a watch shown for reference)
  growth     watch events/s and the service's RSS at 1k, 10k (and 100k)
             tracked Jobs
  admission  completion seen -> next admission, p50/p99, with
             MAX_CONCURRENT_JOBS=50 and 1 s pods
  simulator  the API server simulator alone (`cargo bench -p kube-api-sim
             --bench scale`): memory per stored Job of the service's shape
             and cost per create at 1k, 10k (quick) and 50k, 100k (full)
             stored Jobs, a Job watch open; in-process, not pinned; with
             glibc's allocator and, when installed, jemalloc preloaded (the
             allocator the orchestrator binary links)
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret"
TOKEN = "bench-token-0123456789"
SERVER_CPU = "0"
LOAD_CPU = "1"
# The ingest row of the decoded shape (`issues.labeled`, a label no rule routes).
LABELED = "9KB-labeled"


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def http(url, body=None, headers=None, method=None, timeout=10):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url, what, seconds=60, body=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            http(url, body, timeout=2)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start ({url})")


class Proc:
    """A pinned child process, killed on exit."""

    live = []

    def __init__(self, args, env=None, cpu=SERVER_CPU, stderr=None, cwd=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.stderr_path = stderr
        err = open(stderr, "wb") if stderr else subprocess.DEVNULL
        self.p = subprocess.Popen(
            ["taskset", "-c", cpu] + args,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=cwd,
            start_new_session=True,
        )
        Proc.live.append(self)

    @property
    def pid(self):
        return self.p.pid

    def rss_mb(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return None

    def cpu_s(self):
        """CPU seconds (user + system) the process has used."""
        try:
            with open(f"/proc/{self.p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self in Proc.live:
            Proc.live.remove(self)


def stop_all():
    for p in list(Proc.live):
        p.stop()


def wrk(url, script, seconds, conns=32, env=None, latency=False):
    args = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", script]
    if latency:
        args.append("--latency")
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = subprocess.run(args + [url], env=full_env, capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        p[pct] = float(val) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": p.get("50"),
        "p99_ms": p.get("99"),
    }


def metrics(port):
    try:
        _, body = http(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except Exception:
        return {}
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, val = line.rpartition(" ")
        try:
            out[key] = float(val)
        except ValueError:
            pass
    return out


def seen(port):
    """Jobs the service's watch has seen: the tracked gauge when the build
    has it, else queued + running (benches keep every Job in those two)."""
    m = metrics(port)
    if "orchestrator_jobs_tracked" in m:
        return int(m["orchestrator_jobs_tracked"])
    return int(m.get('orchestrator_jobs{state="queued"}', 0) + m.get('orchestrator_jobs{state="running"}', 0))


def wait_seen(port, target, seconds):
    """Waits until the watch has seen `target` Jobs; answers the time it took
    (None on timeout) and the last count."""
    start = time.time()
    n = seen(port)
    while n < target:
        if time.time() - start > seconds:
            return None, n
        time.sleep(0.05)
        n = seen(port)
    return time.time() - start, n


# ---------------------------------------------------------------- inputs


def prepare(d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(ROOT, "tests/fixtures/github/issue_comment/created.json")) as f:
        fixture = json.load(f)

    def strip_urls(v):
        if isinstance(v, dict):
            return {k: strip_urls(x) for k, x in v.items() if not (k.endswith("_url") or k in ("node_id", "url"))}
        if isinstance(v, list):
            return [strip_urls(x) for x in v]
        return v

    bodies = {}
    small = strip_urls(fixture)
    small["issue"]["body"] = ""
    small["comment"]["body"] = "Thanks!"
    bodies["1KB"] = json.dumps(small, separators=(",", ":")).encode()
    bodies["9KB"] = json.dumps(fixture, separators=(",", ":")).encode()
    for name, size in (("100KB", 100_000), ("1MB", 1_000_000)):
        big = json.loads(json.dumps(fixture))
        pad = size - len(bodies["9KB"])
        big["comment"]["body"] = (fixture["comment"]["body"] + " " + "lorem ipsum " * (pad // 12 + 1))[: len(fixture["comment"]["body"]) + pad]
        bodies[name] = json.dumps(big, separators=(",", ":")).encode()
    events = {name: "issue_comment" for name in bodies}
    # The decoded shape: a label event the rules must decode to see that no
    # rule routes its label.
    with open(os.path.join(ROOT, "tests/fixtures/github/issues/labeled.json")) as f:
        labeled = json.load(f)
    labeled["label"]["name"] = "not-routed"
    bodies[LABELED] = json.dumps(labeled, separators=(",", ":")).encode()
    events[LABELED] = "issues"
    for name, body in bodies.items():
        sub = os.path.join(d, "ingest-" + name)
        os.makedirs(sub, exist_ok=True)
        open(os.path.join(sub, "body.json"), "wb").write(body)
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        open(os.path.join(sub, "signature"), "w").write("sha256=" + sig)
        open(os.path.join(sub, "event"), "w").write(events[name])
    task = {"title": "Bench task", "prompt": "Do the bench task. " * 20, "repository": "acme/bench", "priority": 1}
    open(os.path.join(d, "task.json"), "w").write(json.dumps(task))
    open(os.path.join(d, "token"), "w").write(TOKEN)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": "raw-",
            "labels": {
                "app.kubernetes.io/managed-by": "orchestrator",
                "orchestrator.dev/source": "cli",
                "orchestrator.dev/kind": "task",
                "orchestrator.dev/priority": "p05",
                "orchestrator.dev/repository": "acme.bench",
            },
            "annotations": {"orchestrator.dev/dedup-key": "raw"},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "orchestrator"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "agent",
                            "image": "anthropic/claude-code:latest",
                            "command": ["claude", "-p", "$(PROMPT)"],
                            "env": [
                                {"name": "PROMPT", "value": task["prompt"]},
                                {"name": "TASK_JSON", "value": json.dumps(task)},
                            ],
                        }
                    ],
                },
            },
        },
    }
    open(os.path.join(d, "job.json"), "w").write(json.dumps(job))
    return {k: len(v) for k, v in bodies.items()}


# ---------------------------------------------------------------- processes


def binary():
    return os.environ.get("ORCHESTRATOR_BIN") or os.path.join(os.environ["CARGO_TARGET_DIR"], "release/orchestrator")


def sim_binary():
    """The simulator comes from this checkout's build (SIM_BIN overrides), so
    runs of different service builds (ORCHESTRATOR_BIN) face the same API
    server."""
    return os.environ.get("SIM_BIN") or os.path.join(os.environ["CARGO_TARGET_DIR"], "release/orchestrator")


def start_sim(d, port, run_seconds, tag):
    kc = os.path.join(d, f"kubeconfig-{tag}")
    if os.path.exists(kc):
        os.remove(kc)
    sim = Proc(
        [sim_binary(), "sim", "--listen", f"127.0.0.1:{port}", "--kubeconfig-out", kc,
         "--default-run-seconds", str(run_seconds), "--workers", "1", "--history", "200000"],
        env={"RUST_LOG": "warn"},
    )
    wait_http(f"http://127.0.0.1:{port}/version", "the simulator")
    return sim, kc


def start_serve(d, port, kubeconfig, tag, extra=None):
    env = {
        "KUBECONFIG": kubeconfig,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SERVER_WORKERS": "1",
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "API_TOKENS": f"cli={TOKEN}",
        "RATE_LIMIT_PER_REPO_PER_MINUTE": "1000000",
        "RATE_LIMIT_PER_SENDER_PER_MINUTE": "1000000",
        # The load comes from one token: no per-token limit (0 = off).
        "API_RATE_LIMIT_PER_TOKEN_PER_MINUTE": "0",
        "KUBE_API_QPS": "100000",
        "KUBE_API_BURST": "100000",
        "MAX_CONCURRENT_JOBS": "1",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "RUST_LOG": "warn",
    }
    env.update(extra or {})
    serve = Proc([binary(), "serve"], env=env, stderr=os.path.join(d, f"serve-{tag}.log"))
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if http(f"http://127.0.0.1:{port}/ready", timeout=2)[0] == 200:
                return serve
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"orchestrator serve did not become ready (see {d}/serve-{tag}.log)")


# ---------------------------------------------------------------- sections


def ingest(d, secs, sizes, node_dir, repeat=1):
    out = {}
    script = os.path.join(ROOT, "benches/load/post.lua")
    targets = {}
    examples = os.path.join(os.environ["CARGO_TARGET_DIR"], "release/examples")
    ceiling = Proc([os.path.join(examples, "ceiling_route")],
                   env={"CEILING_LISTEN": "127.0.0.1:18089", "GITHUB_WEBHOOK_SECRET": SECRET})
    wait_http("http://127.0.0.1:18089/", "the ceiling route")
    targets["ceiling"] = (ceiling, "http://127.0.0.1:18089/webhook/github")
    naive = Proc([os.path.join(examples, "naive_route")],
                 env={"NAIVE_LISTEN": "127.0.0.1:18090", "GITHUB_WEBHOOK_SECRET": SECRET})
    wait_http("http://127.0.0.1:18090/", "the naive route")
    targets["naive"] = (naive, "http://127.0.0.1:18090/webhook/github")
    if node_dir:
        # ES modules resolve packages next to the script: run a copy there.
        shutil.copy(os.path.join(ROOT, "benches/load/octokit.mjs"), node_dir)
        octo = Proc(["node", os.path.join(node_dir, "octokit.mjs")],
                    env={"PORT": "18092", "GITHUB_WEBHOOK_SECRET": SECRET}, cwd=node_dir)
        # Its middleware never answers paths it does not serve: ask the
        # webhook path (an empty POST gets a 4xx at once).
        wait_http("http://127.0.0.1:18092/webhook/github", "the @octokit/webhooks server", body=b"")
        targets["octokit"] = (octo, "http://127.0.0.1:18092/webhook/github")
    sim, kc = start_sim(d, 16443, 1.0, "ingest")
    serve = start_serve(d, 18091, kc, "ingest")
    targets["service"] = (serve, "http://127.0.0.1:18091/webhook/github")
    order = ["service", "ceiling", "naive", "octokit"]
    for size in sizes:
        env = {"LOAD_DIR": os.path.join(d, "ingest-" + size)}
        # The service lets one client address have 16 unauthenticated
        # bodies in flight (429 beyond): 100 KB and 1 MB bodies take long
        # enough to arrive that 32 connections would measure that refusal.
        conns = 16 if size in ("100KB", "1MB") else 32
        runs = {name: [] for name in targets}
        # Interleaved, so a change in the machine's other load falls on
        # every server alike; each server's median run is kept.
        for _ in range(repeat):
            for name in order:
                if name not in targets:
                    continue
                proc_ = targets[name][0]
                cpu0 = proc_.cpu_s()
                r = wrk(targets[name][1], script, secs, conns=conns, env=env, latency=True)
                # The server's own CPU time per request: less sensitive than
                # req/s to what else the machine runs.
                r["cpu_us_per_request"] = (proc_.cpu_s() - cpu0) * 1e6 / max(1, r["requests"])
                runs[name].append(r)
                log(f"ingest {size} {name}: {r['rps']:.0f} req/s, p99 {r['p99_ms']} ms, "
                    f"{r['cpu_us_per_request']:.1f} us CPU/request, non-2xx {r['non2xx']}")
        row = {}
        for name, rs in runs.items():
            rs.sort(key=lambda r: r["rps"])
            row[name] = dict(rs[len(rs) // 2], runs=[r["rps"] for r in rs],
                             cpu_us_per_request=sorted(r["cpu_us_per_request"] for r in rs)[len(rs) // 2])
        # p99 at half of the service's peak: pace each connection.
        peak = row["service"]["rps"]
        if peak > 0:
            pace_ms = max(1, int(conns * 1000 / (peak / 2)))
            half = wrk(targets["service"][1], script, secs, conns=conns,
                       env=dict(env, RATE_DELAY_MS=str(pace_ms)), latency=True)
            row["service_half_load"] = half
            log(f"ingest {size} service at ~half load: {half['rps']:.0f} req/s, p99 {half['p99_ms']} ms")
        row["connections"] = conns
        out[size] = row
    for p, _ in targets.values():
        p.stop()
    sim.stop()
    return out


def service_job_shape(d, kc, sim_port):
    """The Job the service itself creates for a task (captured from the
    simulator after one task, server-set fields removed, named by
    generateName), so the raw baseline creates the same object."""
    serve = start_serve(d, 18097, kc, "shape")
    body = open(os.path.join(d, "task.json"), "rb").read()
    code, _ = http("http://127.0.0.1:18097/api/v1/tasks", body, {
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
        "Idempotency-Key": f"shape-{time.time()}"}, "POST")
    serve.stop()
    if code != 202:
        raise SystemExit(f"the shape task was answered {code}")
    _, listing = http(f"http://127.0.0.1:{sim_port}/apis/batch/v1/namespaces/default/jobs"
                      "?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dorchestrator")
    job = json.loads(listing)["items"][0]
    job.pop("status", None)
    meta = job["metadata"]
    for k in ("name", "uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
        meta.pop(k, None)
    meta["generateName"] = "raw-"
    # As created: suspended (the one task may have been admitted since).
    job["spec"]["suspend"] = True
    # Defaulting on create adds the selector and the controller's labels.
    job["spec"].pop("selector", None)
    labels = job["spec"]["template"].get("metadata", {}).get("labels", {})
    for k in ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"):
        labels.pop(k, None)
    path = os.path.join(d, "job-service.json")
    open(path, "w").write(json.dumps(job))
    return path


def raw_creates(d, port, job_file, secs, watch):
    """Creates of `job_file` per second against the simulator on `port`,
    with (like the service) or without a Job watch open. The watch reader
    runs on the load generator's core."""
    reader = None
    if watch:
        # From the current resourceVersion, as the service's watch runs after
        # its list: no initial events for the Jobs already there.
        _, listing = http(f"http://127.0.0.1:{port}/apis/batch/v1/namespaces/default/jobs?limit=1")
        rv = json.loads(listing)["metadata"]["resourceVersion"]
        reader = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, "curl", "-sN", "-o", "/dev/null",
             f"http://127.0.0.1:{port}/apis/batch/v1/namespaces/default/jobs?watch=1&allowWatchBookmarks=true"
             f"&resourceVersion={rv}&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dorchestrator"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wrk(f"http://127.0.0.1:{port}/apis/batch/v1/namespaces/default/jobs",
                   os.path.join(ROOT, "benches/load/create.lua"), secs,
                   env={"BENCH_DIR": d, "JOB_FILE": job_file})
    finally:
        if reader:
            reader.terminate()
            reader.wait()


def settle(proc, limit_s=60):
    """Waits (bounded) until `proc` is idle: the simulator's Job controller
    works through the Jobs a run created after the run's requests end, and
    that work must not be charged to the next measurement."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        c0 = proc.cpu_s()
        time.sleep(0.5)
        if proc.cpu_s() - c0 < 0.025:
            return


def trigger(d, secs, wait_limit):
    """The limit of this path is the API server creating the service's own
    Job with the service's watch open (`raw`); a small Job with no watch
    (`bare`) is shown for reference."""
    sim, kc = start_sim(d, 16444, 3600.0, "trigger")
    shape = service_job_shape(d, kc, 16444)
    sim_cpu0 = sim.cpu_s()
    bare = raw_creates(d, 16444, os.path.join(d, "job.json"), secs, watch=False)
    settle(sim)
    bare_cpu_ms = (sim.cpu_s() - sim_cpu0) * 1000 / max(1, bare["requests"])
    log(f"raw creates of a small Job, no watch: {bare['rps']:.0f}/s (non-2xx {bare['non2xx']})")
    sim_cpu0 = sim.cpu_s()
    raw = raw_creates(d, 16444, shape, secs, watch=True)
    settle(sim)
    raw_cpu_ms = (sim.cpu_s() - sim_cpu0) * 1000 / max(1, raw["requests"])
    log(f"raw creates of the service's Job, watch open: {raw['rps']:.0f}/s (non-2xx {raw['non2xx']})")
    serve = start_serve(d, 18093, kc, "trigger")
    base = seen(18093)  # the Jobs created so far, listed at start
    sim_cpu0, serve_cpu0 = sim.cpu_s(), serve.cpu_s()
    t0 = time.time()
    acc = wrk("http://127.0.0.1:18093/api/v1/tasks", os.path.join(ROOT, "benches/load/task.lua"), secs,
              env={"BENCH_DIR": d})
    accepted = acc["requests"] - acc["non2xx"]
    took, n = wait_seen(18093, base + accepted, wait_limit)
    n -= base
    per = max(1, n)
    sim_task_ms = (sim.cpu_s() - sim_cpu0) * 1000 / per
    serve_task_ms = (serve.cpu_s() - serve_cpu0) * 1000 / per
    log(f"CPU per Job in the simulator: small create {bare_cpu_ms:.3f} ms, the service's Job with a watch "
        f"{raw_cpu_ms:.3f} ms; per task {sim_task_ms:.3f} ms simulator + {serve_task_ms:.3f} ms service")
    seen_rate = accepted / (time.time() - t0) if took is not None else n / (time.time() - t0)
    log(f"tasks: {acc['rps']:.0f}/s answered, {accepted} accepted, watch saw {n} "
        f"({seen_rate:.0f}/s accepted and seen)")
    res = {
        "raw_creates_per_s": raw["rps"],
        "raw_job_bytes": os.path.getsize(shape),
        "bare_creates_per_s": bare["rps"],
        "bare_job_bytes": os.path.getsize(os.path.join(d, "job.json")),
        "tasks_answered_per_s": acc["rps"],
        "tasks_accepted": accepted,
        "tasks_rejected": acc["non2xx"],
        "accepted_and_seen_per_s": seen_rate,
        "watch_caught_up": took is not None,
        "ratio_to_raw": seen_rate / raw["rps"] if raw["rps"] else None,
        "ratio_to_bare": seen_rate / bare["rps"] if bare["rps"] else None,
        "service_rss_mb": serve.rss_mb(),
        "cpu_ms_per_bare_create_simulator": bare_cpu_ms,
        "cpu_ms_per_raw_create_simulator": raw_cpu_ms,
        "cpu_ms_per_task_simulator": sim_task_ms,
        "cpu_ms_per_task_service": serve_task_ms,
    }
    serve.stop()
    sim.stop()
    return res


def sim_creates(sim_port):
    """Job creates the simulator answered: (all, created with 201). A
    generateName collision is answered 409 (a few hundred in 100,000)."""
    try:
        _, body = http(f"http://127.0.0.1:{sim_port}/_sim/stats", timeout=5)
        stats = json.loads(body)
    except Exception:
        return 0, 0
    rows = [r for r in stats.get("requests", []) if r.get("verb") == "create" and r.get("resource") == "jobs"]
    return sum(r.get("count", 0) for r in rows), sum(r.get("count", 0) for r in rows if r.get("code") == 201)


def create_jobs(d, sim_port, n, limit_s):
    """Creates about `n` raw Jobs with wrk and returns as soon as the
    simulator has answered that many creates; returns how many it created. (wrk always runs for its whole -d duration,
    even after `wrk.thread:stop()`: waiting for it made each fill take the
    full 600 s, which looked like the growth section hanging.)"""
    start_all, start_ok = sim_creates(sim_port)
    args = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c32", f"-d{limit_s}s", "-s",
            os.path.join(ROOT, "benches/load/create.lua"),
            f"http://127.0.0.1:{sim_port}/apis/batch/v1/namespaces/default/jobs"]
    env = dict(os.environ, BENCH_DIR=d, CREATE_LIMIT=str(n))
    w = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + limit_s
    while time.time() < deadline and w.poll() is None and sim_creates(sim_port)[0] < start_all + n:
        time.sleep(0.05)
    if w.poll() is None:
        w.terminate()
        w.wait()
    time.sleep(0.2)  # answers already on their way
    return sim_creates(sim_port)[1] - start_ok


def growth(d, milestones, wait_limit):
    sim, kc = start_sim(d, 16445, 3600.0, "growth")
    serve = start_serve(d, 18094, kc, "growth")
    out = []
    total = 0
    for m in milestones:
        burst = max(500, min(5000, m // 10))
        fill = m - burst - total
        if fill > 0:
            total += create_jobs(d, 16445, fill, wait_limit)
            took, n = wait_seen(18094, total, wait_limit)
            if took is None:
                log(f"growth: the watch saw only {n} of {total} Jobs within {wait_limit} s; stopping here")
                out.append({"tracked": n, "expected": total, "events_per_s": None,
                            "rss_mb": serve.rss_mb(), "caught_up": False})
                break
        before = seen(18094)
        t0 = time.time()
        total += create_jobs(d, 16445, burst, wait_limit)
        took, n = wait_seen(18094, total, wait_limit)
        elapsed = time.time() - t0
        rate = (n - before) / elapsed
        rss = serve.rss_mb()
        out.append({"tracked": n, "expected": total, "burst": burst, "events_per_s": rate, "rss_mb": rss,
                    "caught_up": took is not None})
        log(f"growth {m}: {rate:.0f} events/s over a burst of {burst}, RSS {rss:.1f} MB"
            + ("" if took is not None else f" (saw {n} of {total} within {wait_limit} s)"))
        if took is None:
            break
    serve.stop()
    sim.stop()
    return out


def admission(d, jobs):
    sim, kc = start_sim(d, 16446, 1.0, "admission")
    serve = start_serve(d, 18095, kc, "admission",
                        {"MAX_CONCURRENT_JOBS": "50", "LOG_FORMAT": "json", "RUST_LOG": "info"})
    body = open(os.path.join(d, "task.json"), "rb").read()
    for i in range(jobs):
        http("http://127.0.0.1:18095/api/v1/tasks", body, {
            "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
            "Idempotency-Key": f"admission-{time.time()}-{i}"}, "POST")
    deadline = time.time() + jobs * 2 / 50 + 60
    while time.time() < deadline:
        m = metrics(18095)
        if m.get('orchestrator_jobs{state="queued"}', 1) == 0 and m.get('orchestrator_jobs{state="running"}', 1) == 0:
            break
        time.sleep(0.2)
    serve.stop()
    sim.stop()
    done, admits = [], []
    for line in open(serve.stderr_path, errors="replace"):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        f = ev.get("fields", {})
        ts = datetime.datetime.fromisoformat(ev.get("timestamp", "").replace("Z", "+00:00")).timestamp()
        if f.get("message") == "admitting queued job":
            admits.append(ts)
        elif f.get("message") == "job state" and f.get("state") in ("succeeded", "failed", "timed_out"):
            done.append(ts)
    admits.sort()
    done.sort()
    lat = []
    i = 0
    # Completions while work was still queued: each is followed by an admission.
    for t in done[: max(0, len(admits) - 50)]:
        while i < len(admits) and admits[i] < t:
            i += 1
        if i < len(admits):
            lat.append((admits[i] - t) * 1000)
            i += 1
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    res = {"jobs": jobs, "completions_measured": len(lat), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}
    log(f"admission latency: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms over {len(lat)} completions")
    return res


def jemalloc():
    """The path of the system's libjemalloc.so.2, if installed."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    m = re.search(r"libjemalloc\.so\.2 .*=> (\S+)", out)
    return m.group(1) if m else None


def simulator(d, milestones):
    """The simulator's own scale bench: with the system's allocator (glibc,
    what test binaries and `orchestrator sim` use) and, when installed, with
    jemalloc preloaded (the same code; glibc's allocator slows down as the
    heap grows, jemalloc's does not; the orchestrator binary, which embeds
    the simulator, links jemalloc)."""
    runs = {"glibc": {}}
    lib = jemalloc()
    if lib:
        runs["jemalloc"] = {"LD_PRELOAD": lib}
    else:
        log("libjemalloc.so.2 is not installed: the simulator runs with glibc's allocator only")
    res = {}
    for name, extra in runs.items():
        out = os.path.join(d, f"sim-scale-{name}.json")
        env = dict(os.environ, SIM_SCALE_MILESTONES=",".join(str(m) for m in milestones), SIM_SCALE_JSON=out)
        env.update(extra)
        log(f"simulator scale bench ({name}) to {milestones[-1]} stored Jobs")
        r = subprocess.run(["cargo", "bench", "--locked", "-p", "kube-api-sim", "--bench", "scale"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0 or not os.path.exists(out):
            raise SystemExit(f"the simulator scale bench failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        res[name] = json.load(open(out))
        for row in res[name]["rows"]:
            log(f"simulator ({name}) {row['jobs']} Jobs: RSS {row['rss_mb']:.0f} MB "
                f"({row['rss_kb_per_job']:.1f} KB/Job), create {row['create_wall_ms']:.2f} ms wall, "
                f"{row['create_cpu_ms']:.2f} ms CPU")
    return res


# ---------------------------------------------------------------- report


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = open("/proc/meminfo").readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "note": os.environ.get("BENCH_NOTE", ""),
        "git": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "binary": binary(),
        "simulator_binary": sim_binary(),
    }


def table(r):
    lines = []
    add = lines.append
    m = r["machine"]
    add(f"machine: {m['cpu']} ({m['cores']} cores), load average at start {m['load_average_at_start'][0]:.1f}"
        + (f", at end {m['load_average_at_end'][0]:.1f}" if m.get("load_average_at_end") else "")
        + (f"; {m['note']}" if m.get("note") else ""))
    if "trigger" in r:
        t = r["trigger"]
        add("")
        add("| trigger | per second |")
        add("|---|---|")
        if t.get("bare_creates_per_s") is not None:
            add(f"| raw creates of a small Job ({t['bare_job_bytes']} B), no watch | {t['bare_creates_per_s']:.0f} |")
        add(f"| raw creates of the service's Job ({t.get('raw_job_bytes', '?')} B), Job watch open: the limit "
            f"| {t['raw_creates_per_s']:.0f} |")
        add(f"| tasks answered | {t['tasks_answered_per_s']:.0f} |")
        add(f"| tasks accepted and seen by the watch | {t['accepted_and_seen_per_s']:.0f} "
            f"({t['ratio_to_raw']:.2f}x the limit"
            + (f", {t['ratio_to_bare']:.2f}x small creates" if t.get("ratio_to_bare") else "") + ") |")
        if t.get("cpu_ms_per_task_service") is not None:
            add("")
            add(f"CPU per Job in the simulator: {t.get('cpu_ms_per_bare_create_simulator', 0):.3f} ms (small Job, "
                f"no watch), {t['cpu_ms_per_raw_create_simulator']:.3f} ms (the service's Job, watch open), "
                f"{t['cpu_ms_per_task_simulator']:.3f} ms per task; the service "
                f"{t['cpu_ms_per_task_service']:.3f} ms per task ("
                f"{t['cpu_ms_per_task_service'] / max(1e-9, t['cpu_ms_per_raw_create_simulator']):.2f}x "
                f"the API server's per create)")
    if "growth" in r:
        add("")
        add("| tracked Jobs | watch events/s | service RSS (MB) |")
        add("|---|---|---|")
        for g in r["growth"]:
            rate = f"{g['events_per_s']:.0f}" if g.get("events_per_s") is not None else "-"
            seen_note = "" if g.get("caught_up", True) else f" (saw {g['tracked']} of {g.get('expected')}: did not catch up)"
            rss = f"{g['rss_mb']:.0f}" if g.get("rss_mb") is not None else "-"
            add(f"| {g['tracked']}{seen_note} | {rate} | {rss} |")
    if "admission" in r:
        a = r["admission"]
        add("")
        add(f"admission latency (completion seen -> next admission, MAX_CONCURRENT_JOBS=50, 1 s pods): "
            f"p50 {a['p50_ms'] and round(a['p50_ms'], 3)} ms, p99 {a['p99_ms'] and round(a['p99_ms'], 3)} ms ({a['completions_measured']} completions)")
    if "simulator" in r:
        for name, sim in r["simulator"].items():
            rows = sim["rows"]
            add("")
            add(f"simulator alone, {name} allocator: the service's Job ({sim['job_bytes_as_sent']} B as sent, "
                f"{sim['stored_job_bytes']} B as stored), suspended, a Job watch open; history "
                f"{sim['history_limit']} changes, Events at most {sim.get('max_events')} for "
                f"{sim.get('event_ttl_s')} s; {sim.get('compressed_json_bytes', 0) / max(1, sim.get('objects', 1)):.0f} B "
                f"of compressed JSON per object")
            add("")
            add("| stored Jobs | RSS (MB) | RSS per Job (KB) | create, wall (ms) | create, CPU (ms) |")
            add("|---|---|---|---|---|")
            base = rows[0]
            for row in rows:
                add(f"| {row['jobs']} | {row['rss_mb']:.0f} | {row['rss_kb_per_job']:.1f} "
                    f"| {row['create_wall_ms']:.2f} ({row['create_wall_ms'] / max(1e-9, base['create_wall_ms']):.2f}x) "
                    f"| {row['create_cpu_ms']:.2f} ({row['create_cpu_ms'] / max(1e-9, base['create_cpu_ms']):.2f}x) |")
    if "ingest" in r:
        add("")
        add(ingest_table(r))
    return "\n".join(lines)


def ingest_table(r):
    """The ingest rows: each server's req/s, the service's ratios to the
    baselines, and its p99 at peak and at half of its peak."""
    names = [n for n in ("service", "ceiling", "naive", "octokit") if any(n in row for row in r["ingest"].values())]
    lines = ["| GitHub delivery | " + " | ".join(f"{n} req/s" for n in names)
             + " | service / " + " / ".join(names[1:]) + " | service p99 at peak / at half load |",
             "|---|" + "---|" * (len(names) + 2)]
    for size, row in r["ingest"].items():
        cells = []
        for n in names:
            v = row.get(n, {}).get("rps")
            bad = row.get(n, {}).get("non2xx", 0)
            cells.append((f"{v:.0f}" if v else "-") + (f" ({bad} non-2xx)" if bad else ""))
        svc = row.get("service", {}).get("rps", 0)
        ratios = " / ".join(f"{svc / row[n]['rps']:.2f}x" if row.get(n, {}).get("rps") else "-" for n in names[1:])
        p99 = row.get("service", {}).get("p99_ms")
        half = row.get("service_half_load", {}).get("p99_ms")
        what = ("issues.labeled, label not routed: decoded" if size == LABELED
                else f"issue_comment {size}, no command: ignored unparsed")
        lines.append(f"| {what} ({r['body_bytes'][size]} B) | " + " | ".join(cells)
                     + f" | {ratios} | {p99} / {half} ms |")
    lines.append("")
    lines.append("CPU time per request (µs, the server's own; median run): " + "; ".join(
        f"{size}: " + ", ".join(f"{n} {row[n]['cpu_us_per_request']:.1f}" for n in names
                                if row.get(n, {}).get("cpu_us_per_request") is not None)
        for size, row in r["ingest"].items()))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="ingest,trigger,growth,admission,simulator")
    ap.add_argument("--node-dir", default="")
    ap.add_argument("--repeat", type=int, default=3,
                    help="ingest: load each server this many times, interleaved (medians kept)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches/results"))
    args = ap.parse_args()
    d = os.path.join(os.environ["CARGO_TARGET_DIR"], "bench")
    shutil.rmtree(d, ignore_errors=True)
    sizes = prepare(d)
    only = args.only.split(",")
    secs = 3 if args.quick else 8
    r = {"mode": "quick" if args.quick else "full", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
         "machine": machine(), "body_bytes": sizes}
    try:
        if "trigger" in only:
            r["trigger"] = trigger(d, secs, 30 if args.quick else max(60, secs * 20))
        if "growth" in only:
            r["growth"] = growth(d, [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000],
                                 30 if args.quick else 600)
        if "admission" in only:
            r["admission"] = admission(d, 150 if args.quick else 400)
        if "simulator" in only:
            r["simulator"] = simulator(d, [1_000, 10_000] if args.quick else [1_000, 10_000, 50_000, 100_000])
        if "ingest" in only:
            r["ingest"] = ingest(d, 2 if args.quick else 3,
                                 ["9KB", LABELED] if args.quick else ["1KB", "9KB", LABELED, "100KB", "1MB"],
                                 args.node_dir, max(1, args.repeat))
    finally:
        stop_all()
    r["machine"]["load_average_at_end"] = os.getloadavg()
    text = table(r)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S") + ".json")
    r["table"] = text
    with open(path, "w") as f:
        json.dump(r, f, indent=2)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
