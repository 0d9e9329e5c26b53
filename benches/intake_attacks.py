#!/usr/bin/env python3
"""Memory and intake under the attacks of the second attack run, each against
a fresh `orchestrator serve` (on the standalone simulator), on loopback:

  promises   3 connections declaring 25, 25 and 14 MiB GitHub bodies and
             sending nothing, reopened as soon as they are answered
  chunked    3 connections streaming 24 MiB chunked bodies, then holding
  pipeline   30 connections x 3,000 pipelined GET /api/v1/openapi.json, never
             reading an answer

While each attack runs (12 s), a signed GitHub delivery (a real `issues`
payload, labeled `agent`) is sent every 100 ms; the answers are counted. The
service's RSS is sampled idle, at its peak during the attack, and 3 s after
the attackers have closed. Bounded: every socket has a timeout, every loop
an end.

Usage: CARGO_TARGET_DIR=... python3 benches/intake_attacks.py [--only NAME]
(uses $ORCHESTRATOR_BIN or $CARGO_TARGET_DIR/release/orchestrator)."""

import argparse
import collections
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

ATTACK_SECONDS = 12
MIB = 1024 * 1024
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "github", "issues", "labeled.json")


def bogus_head(port, framing):
    return (
        "POST /webhook/github HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        "x-github-event: issues\r\nx-github-delivery: attack\r\n"
        f"x-hub-signature-256: sha256={'0' * 64}\r\n{framing}\r\n").encode()


def promises(port, stop):
    def one(length):
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=15)
                s.sendall(bogus_head(port, f"content-length: {length}\r\n"))
                s.recv(64)
                s.close()
            except OSError:
                pass
    return [threading.Thread(target=one, args=(n,)) for n in (25 * MIB, 25 * MIB, 14 * MIB)]


def chunked(port, stop):
    def one():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=15)
                s.sendall(bogus_head(port, "transfer-encoding: chunked\r\n"))
                chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
                for _ in range(24 * 16):
                    s.sendall(chunk)
                s.recv(64)
                s.close()
            except OSError:
                pass
    return [threading.Thread(target=one) for _ in range(3)]


def pipeline(port, stop):
    held = []
    lock = threading.Lock()

    def one():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            with lock:
                held.append(s)
            req = b"GET /api/v1/openapi.json HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n" * 3000
            s.sendall(req)
        except OSError:
            pass
        stop.wait(ATTACK_SECONDS + 5)
        with lock:
            for h in held:
                try:
                    h.close()
                except OSError:
                    pass
            held.clear()
    return [threading.Thread(target=one) for _ in range(30)]


ATTACKS = {"promises": promises, "chunked": chunked, "pipeline": pipeline}


def signed_delivery(port, number):
    with open(FIXTURE, "rb") as f:
        payload = json.load(f)
    payload["label"]["name"] = "agent"
    payload["issue"]["number"] = number
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(run.SECRET.encode(), body, hashlib.sha256).hexdigest()
    try:
        status, _ = run.http(f"http://127.0.0.1:{port}/webhook/github", body=body, headers={
            "content-type": "application/json", "x-github-event": "issues",
            "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": sig}, timeout=10)
        return str(status)
    except Exception as e:  # noqa: BLE001 - counted, not raised
        return type(e).__name__


def measure(d, name, port, sim_port, env):
    sim, kc = run.start_sim(d, sim_port, 1.0, f"attack-{name}")
    serve = run.start_serve(d, port, kc, f"attack-{name}", {"SERVER_WORKERS": "2", **env})
    time.sleep(2)
    idle = serve.rss_mb()
    stop = threading.Event()
    threads = ATTACKS[name](port, stop)
    for t in threads:
        t.start()
    answers = collections.Counter()
    peak = idle
    end = time.time() + ATTACK_SECONDS
    n = 0
    time.sleep(1)
    while time.time() < end:
        answers[signed_delivery(port, 100000 + n)] += 1
        n += 1
        peak = max(peak, serve.rss_mb())
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(30)
        peak = max(peak, serve.rss_mb())
    time.sleep(3)
    after = serve.rss_mb()
    serve.stop()
    sim.stop()
    return {"attack": name, "signed": dict(answers), "idle_mb": round(idle, 1),
            "peak_mb": round(peak, 1), "after_mb": round(after, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(ATTACKS))
    ap.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for the service (repeatable)")
    args = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in args.server_env)
    d = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "bench")
    os.makedirs(d, exist_ok=True)
    try:
        for i, name in enumerate([args.only] if args.only else list(ATTACKS)):
            r = measure(d, name, 18201 + i, 16501 + i, env)
            print(json.dumps(r), flush=True)
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()
