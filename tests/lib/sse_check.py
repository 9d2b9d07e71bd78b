#!/usr/bin/env python3
"""The run server's event streams (/api/runs/NAME/events), by plain sockets.

  sse_check.py HOST PORT RUN METRICS_JSONL ROWS MAX_STREAMS

RUN's metrics.jsonl (the file METRICS_JSONL, appended to here) holds ROWS step records. Prints
"ok: NAME" or "FAIL: NAME: ..." per check: the first event holds every record, a line appended
arrives as an event holding only it, MAX_STREAMS streams may be open at once and one more is
refused with 503 while other requests are still answered, and streams whose clients went away
free their places.
"""
import json
import socket
import sys
import time


def check(name, ok, detail=""):
    print(f"ok: {name}" if ok else f"FAIL: {name}: {detail}")


class Stream:
    def __init__(self, host, port, run):
        self.s = socket.create_connection((host, port), timeout=10)
        # HTTP/1.0: the body is the event stream as it is, without chunked framing
        self.s.sendall(f"GET /api/runs/{run}/events HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (l.partition(":") for l in lines[1:])}

    def event(self, timeout):
        """the next "metrics" event's JSON, or None after timeout seconds"""
        end = time.time() + timeout
        while True:
            while b"\n\n" in self.buf:
                ev, _, self.buf = self.buf.partition(b"\n\n")
                fields = dict(l.split(": ", 1) for l in ev.decode().split("\n") if ": " in l)
                if fields.get("event") == "metrics":
                    return json.loads(fields["data"])
            left = end - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def close(self):
        self.s.close()


def get_status(host, port, path):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    buf = s.recv(4096)
    s.close()
    return int(buf.split()[1]) if buf.startswith(b"HTTP/") else 0


def main():
    host, port, run, metrics = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    rows, max_streams = int(sys.argv[5]), int(sys.argv[6])
    a = Stream(host, port, run)
    check("events: 200 text/event-stream", a.status == 200 and
          a.headers.get("content-type") == "text/event-stream", f"{a.status} {a.headers}")
    first = a.event(10)
    check("events: the first event holds every record",
          first is not None and len(first["rows"]) == rows, repr(first)[:300])
    with open(metrics, "a") as f:
        f.write(json.dumps({"step": rows, "loss": 1.25, "lr": 0.001, "grad_norm": 1,
                            "tokens_per_s": 5, "mfu": 0.1}) + "\n")
    t0 = time.time()
    new = a.event(10)
    waited = time.time() - t0
    check("events: an appended line arrives alone",
          new is not None and [r[:2] for r in new["rows"]] == [[rows, 1.25]] and
          new["generation"] == first["generation"], repr(new)[:300])
    print(f"# it arrived after {waited:.2f} s")  # (a timing, not a check: machines are loaded)
    with open(metrics, "a") as f:
        f.write(json.dumps({"step": rows, "step_seconds": 0.5,
                            "phases": {"matmul_s": 0.3, "loss_s": 0.1, "other_s": 0.1}}) + "\n")
        f.write(json.dumps({"step": rows, "rss_bytes": [1000, 2000]}) + "\n")
    new = a.event(10)
    check("events: phases and memory records arrive",
          new is not None and new["rows"] == [] and
          new["phases"] == [{"step": rows, "seconds": 0.5,
                             "phases": {"matmul": 0.3, "loss": 0.1, "other": 0.1}}] and
          new["memory"] == [[rows, [1000, 2000]]], repr(new)[:300])

    # the bound: MAX_STREAMS open (a among them), one more refused; the server still answers
    more = [Stream(host, port, run) for _ in range(max_streams - 1)]
    check(f"events: {max_streams} streams open at once",
          all(s.status == 200 for s in more), str([s.status for s in more]))
    extra = Stream(host, port, run)
    check("events: one more stream is refused with 503", extra.status == 503, str(extra.status))
    extra.close()
    check("events: other requests answered while the streams are open",
          get_status(host, port, "/api/runs") == 200, "")
    # clients that go away free their places
    for s in more[:3]:
        s.close()
    t0 = time.time()
    again = None
    while time.time() - t0 < 20:
        again = Stream(host, port, run)
        if again.status == 200:
            break
        again.close()
        time.sleep(0.25)
    check("events: a closed client's stream is freed",
          again is not None and again.status == 200, f"still {again.status if again else None}")
    print(f"# freed after {time.time() - t0:.1f} s")
    for s in [a, again] + more[3:]:
        s.close()


if __name__ == "__main__":
    main()
