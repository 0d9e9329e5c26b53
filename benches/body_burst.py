#!/usr/bin/env python3
"""Memory under an unauthenticated body burst (the attack the security
suite's body budget answers): N connections each declare a 25 MiB GitHub
delivery with a bogus signature and send it all but the last byte, at
once. Prints the service's RSS idle, at its peak during the burst, and
after every connection was answered (the held ones at the 10 s read
deadline), plus how each connection was answered.

Loopback only; bounded (every socket has a timeout). Usage:
  CARGO_TARGET_DIR=... python3 benches/body_burst.py [--connections 120]
(uses $ORCHESTRATOR_BIN or $CARGO_TARGET_DIR/release/orchestrator)."""

import argparse
import collections
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

SIZE = 25 * 1024 * 1024
CHUNK = 1 << 20


def attack(port, answers, lock):
    status = "no answer"
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall((
            "POST /webhook/github HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            "x-github-event: issues\r\nx-github-delivery: burst\r\n"
            f"x-hub-signature-256: sha256={'0' * 64}\r\ncontent-length: {SIZE}\r\n\r\n").encode())
        chunk = b" " * CHUNK
        sent = 0
        try:
            while sent < SIZE - 1:
                n = min(CHUNK, SIZE - 1 - sent)
                s.sendall(chunk[:n])
                sent += n
        except OSError:
            pass  # refused early: the server answered and closed
        head = s.recv(64).decode(errors="replace")
        status = head.split(" ")[1] if head.startswith("HTTP/") else "closed"
        s.close()
    except OSError as e:
        status = type(e).__name__
    with lock:
        answers[status] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=120)
    args = ap.parse_args()
    d = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "bench")
    os.makedirs(d, exist_ok=True)
    try:
        sim, kc = run.start_sim(d, 16451, 1.0, "burst")
        serve = run.start_serve(d, 18101, kc, "burst", {"SERVER_WORKERS": "2"})
        time.sleep(2)
        idle = serve.rss_mb()
        answers = collections.Counter()
        lock = threading.Lock()
        threads = [threading.Thread(target=attack, args=(18101, answers, lock)) for _ in range(args.connections)]
        for t in threads:
            t.start()
        peak = idle
        while any(t.is_alive() for t in threads):
            peak = max(peak, serve.rss_mb())
            time.sleep(0.05)
        time.sleep(3)
        after = serve.rss_mb()
        print(f"connections: {args.connections} x 25 MiB, bogus signature, last byte held")
        print(f"answers: {dict(answers)}")
        print(f"RSS idle {idle:.1f} MB, peak {peak:.1f} MB, 3 s after the burst {after:.1f} MB")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()
