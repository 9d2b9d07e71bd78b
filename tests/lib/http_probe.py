#!/usr/bin/env python3
"""HTTP requests for the run-server tests, by plain sockets and urllib.

  http_probe.py get URL                 print "STATUS BODY"
  http_probe.py json URL EXPR           print the Python expression EXPR over the JSON body (as j)
  http_probe.py checks BASE_URL        read lines "NAME | PATH | EXPR | EXPECTED" on stdin; GET
                                        BASE_URL+PATH (JSON, as j) and print "ok: NAME" when
                                        str(EXPR) == EXPECTED, else "FAIL: NAME: ..."
  http_probe.py raws HOST PORT          the same for each line of stdin (one request per line)
  http_probe.py raw HOST PORT BYTES     send BYTES (Python escapes allowed, e.g. \\r\\n) as they are,
                                        print the status code of the reply ("closed" when the
                                        server closed the connection without one)
"""
import json
import socket
import sys
import urllib.error
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def raw(host, port, data):
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        buf = b""
    except socket.timeout:
        return "timeout"
    finally:
        s.close()
    parts = buf.split(b" ")
    return parts[1].decode() if len(parts) > 1 and buf.startswith(b"HTTP/") else "closed"


def main():
    cmd = sys.argv[1]
    if cmd == "get":
        code, body = get(sys.argv[2])
        print(code, body)
    elif cmd == "json":
        code, body = get(sys.argv[2])
        if code != 200:
            print(f"HTTP {code}: {body}")
            sys.exit(1)
        j = json.loads(body)
        print(eval(sys.argv[3], {"j": j, "len": len, "abs": abs, "min": min, "max": max}))
    elif cmd == "checks":
        cache = {}
        for line in sys.stdin:
            if not line.strip():
                continue
            name, path, expr, want = [x.strip() for x in line.split(" | ", 3)]
            if path not in cache:
                cache[path] = get(sys.argv[2] + path)
            code, body = cache[path]
            try:
                got = str(eval(expr, {"j": json.loads(body), "len": len, "abs": abs, "min": min,
                                      "max": max, "round": round}))
            except Exception as e:  # a wrong status or shape is a failed check
                got = f"HTTP {code} {body[:200]!r}: {e!r}"
            print(f"ok: {name}" if got == want else f"FAIL: {name}: got {got!r}, expected {want!r}")
    elif cmd == "raws":
        for line in sys.stdin:
            data = line.rstrip("\n").encode().decode("unicode_escape").encode("latin-1")
            print(raw(sys.argv[2], sys.argv[3], data))
    elif cmd == "raw":
        data = sys.argv[4].encode().decode("unicode_escape").encode("latin-1")
        print(raw(sys.argv[2], sys.argv[3], data))
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
