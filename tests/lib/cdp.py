#!/usr/bin/env python3
"""Drive headless Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ended by NUL on file descriptors 3 and 4; no driver library needed).

  cdp.py CHROMIUM URL SCRIPT
SCRIPT holds one command per line, run in order in one page:
  wait SECONDS                 sleep (real time: the page's own timers and the server go on)
  eval NAME EXPRESSION         print "NAME VALUE" (the JavaScript expression's value, as JSON)
  until SECONDS EXPRESSION     evaluate every 0.2 s until true; print "until true|false"
  shot FILE WIDTH HEIGHT       a PNG screenshot of the page at that viewport size
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, exe):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="lmf-cdp.")

        def fds():  # the browser reads commands on fd 3, writes answers on fd 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.p = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4),  # kept after fds() made them
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        end = time.time() + timeout
        while time.time() < end:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m["result"]
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed its pipe")
            self.buf += chunk
        raise TimeoutError(method)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
        subprocess.run(["rm", "-rf", self.profile])


def main():
    exe, url, script = sys.argv[1], sys.argv[2], sys.argv[3]
    b = Browser(exe)
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        b.call("Page.enable", session=s)
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=s)
        b.call("Page.navigate", {"url": url}, session=s)
        for line in open(script):
            words = line.split(None, 2)
            if not words:
                continue
            if words[0] == "wait":
                time.sleep(float(words[1]))
            elif words[0] == "eval":
                r = b.call("Runtime.evaluate", {"expression": words[2], "returnByValue": True}, session=s)
                print(words[1], json.dumps(r["result"].get("value")), flush=True)
            elif words[0] == "until":
                end, ok = time.time() + float(words[1]), False
                while not ok and time.time() < end:
                    r = b.call("Runtime.evaluate", {"expression": words[2], "returnByValue": True}, session=s)
                    ok = r["result"].get("value") is True
                    if not ok:
                        time.sleep(0.2)
                print("until", json.dumps(ok), flush=True)
            elif words[0] == "shot":
                f, w, h = line.split()[1:4]
                b.call("Emulation.setDeviceMetricsOverride",
                       {"width": int(w), "height": int(h), "deviceScaleFactor": 1, "mobile": False}, session=s)
                time.sleep(0.3)
                data = b.call("Page.captureScreenshot", {"format": "png"}, session=s)["data"]
                with open(f, "wb") as out:
                    out.write(base64.b64decode(data))
    finally:
        b.close()


if __name__ == "__main__":
    main()
