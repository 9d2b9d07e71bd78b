#!/usr/bin/env python3
"""Does a stuck browser slow training? One `lmforge train --serve` run, timed in alternating
phases: no clients; the dashboard's own polling; stuck clients (connections that send nothing, half a request, or ask for
the metrics and never read the answer); a busy client polling the metrics as fast as it can.
Each phase's step time is the mean of tokens_per_step / tokens_per_s over the steps that landed
in it (metrics.jsonl).

  scripts/bench_serve_clients.py build/lmforge [--phase-seconds 4] [--rounds 3] [train flags...]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rows(path):
    out = []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n")[:-1]:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if "loss" in j and j.get("tokens_per_s"):
                out.append(j)
    return out


def server_cpu(pid):
    """CPU seconds used so far by the server's threads (libmicrohttpd names them MHD-*)"""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                if not f.read().startswith("MHD"):
                    continue
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def stuck_clients(port, n):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        if i % 3 == 1:
            s.sendall(b"GET /api/runs HTTP/1.1\r\nHo")  # half a request
        elif i % 3 == 2:  # the whole metrics history, never read
            s.sendall(b"GET /api/runs/run/metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    return socks


def page_client(port, stop):  # what the dashboard does: status and new rows, every 1.5 s
    since = 0
    while not stop.is_set():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5).read()
            m = json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/runs/run/metrics?since={since}", timeout=5).read())
            if m["rows"]:
                since = m["rows"][-1][0]
        except OSError:
            pass
        stop.wait(1.5)


def busy_client(port, stop):
    while not stop.is_set():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs/run/metrics", timeout=5).read()
        except OSError:
            time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lmforge")
    ap.add_argument("--phase-seconds", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args, train_flags = ap.parse_known_args()
    work = tempfile.mkdtemp(prefix="lmf-bench-serve.")
    run = os.path.join(work, "run")
    port = free_port()
    flags = train_flags or ["--model", "tiny", "--batch", "8", "--seq", "64", "--bpe-vocab", "0",
                            "--threads", "1"]
    cmd = [args.lmforge, "train", *flags, "--steps", "1000000", "--eval-every", "0",
           "--sample-tokens", "0", "--quiet", "--out", run, "--serve", str(port)]
    p = subprocess.Popen(cmd)
    metrics = os.path.join(run, "metrics.jsonl")
    while not (os.path.exists(metrics) and len(rows(metrics)) >= 20):
        if p.poll() is not None:
            sys.exit("training ended early")
        time.sleep(0.2)
    phases = ["none", "page", "stuck", "busy"]
    times = {k: [] for k in phases}
    cpu = {k: 0.0 for k in phases}
    try:
        for _ in range(args.rounds):
            for ph in phases:
                socks, stop, th = [], threading.Event(), None
                if ph == "stuck":
                    socks = stuck_clients(port, 30)
                elif ph in ("busy", "page"):
                    th = threading.Thread(target=busy_client if ph == "busy" else page_client,
                                          args=(port, stop))
                    th.start()
                start, c0 = len(rows(metrics)), server_cpu(p.pid)
                time.sleep(args.phase_seconds)
                got = rows(metrics)[start:]
                cpu[ph] += server_cpu(p.pid) - c0
                stop.set()
                if th:
                    th.join()
                for s in socks:
                    s.close()
                tps = [r["tokens_per_s"] for r in got]
                times[ph] += [1.0 / t for t in tps]  # seconds per token: the mean of step times
    finally:
        p.terminate()
        p.wait()
    print(f"train flags: {' '.join(flags)}; {args.rounds} rounds of {args.phase_seconds:g} s phases")
    base = statistics.mean(times["none"])
    for ph in phases:
        t = times[ph]
        print(f"{ph:6s} steps {len(t):5d}  mean {statistics.mean(t) / base:6.3f}x of no clients  "
              f"median {statistics.median(t) / statistics.median(times['none']):6.3f}x  "
              f"server CPU {cpu[ph]:.2f} s")


if __name__ == "__main__":
    main()
