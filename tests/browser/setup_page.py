"""The setup page (issue 20) in real browsers: open http://127.0.0.1:PORT/ as a person would,
read what the page says through the browser's own remote protocol (Chromium: DevTools
Protocol; Firefox: WebDriver BiDi), over a small WebSocket client from the standard library.

  trusted  a profile that trusts the CA: the live check says "This device trusts the CA."
  control  a profile that does not: it says "Not trusted yet."; "Check again" makes a fresh
           HTTPS request (the server sees one more rejected handshake) and says it again
Both: the fingerprint on the page is `openssl x509 -fingerprint -sha256` of ca.crt.

`screenshot()` saves the page at phone width (headless Chromium, trusted profile).
"""

import base64
import json
import os
import re
import socket
import struct
import subprocess
import time
import urllib.parse

TRUSTED = "This device trusts the CA."
NOT_TRUSTED = "Not trusted yet."
RESULT_TIMEOUT = 40  # seconds; the page itself gives up on its image after 15 s
IPHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
STATE_JS = ("JSON.stringify({chk: (document.getElementById('chk') || {}).textContent || '',"
            " fp: (document.getElementById('fp') || {}).textContent || '',"
            " open: Array.prototype.map.call(document.querySelectorAll('details[open]'),"
            " function (d) { return d.id; })})")


class Failure(Exception):
    pass


class WebSocket:
    """Just enough RFC 6455 for a JSON-RPC client: masked text frames out, text frames in."""

    def __init__(self, url, timeout=30):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            b = self.sock.recv(1)
            if not b:
                raise Failure(f"{url}: closed during the WebSocket handshake")
            head += b
        if not head.startswith(b"HTTP/1.1 101"):
            raise Failure(f"{url}: {head.splitlines()[0]!r}")

    def _exact(self, n):
        data = b""
        while len(data) < n:
            b = self.sock.recv(n - len(data))
            if not b:
                raise Failure("WebSocket closed")
            data += b
        return data

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text):
        self._frame(0x1, text.encode())

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise Failure("WebSocket closed by the browser")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        self.sock.close()


class Rpc:
    """JSON-RPC over the WebSocket: `call` waits for its answer, skipping events."""

    def __init__(self, url):
        self.ws = WebSocket(url)
        self.next_id = 0

    def call(self, method, params=None, **extra):
        self.next_id += 1
        msg = dict(id=self.next_id, method=method, params=params or {}, **extra)
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") != self.next_id:
                continue
            if "error" in reply:
                raise Failure(f"{method}: {reply['error']}")
            return reply["result"]

    def close(self):
        self.ws.close()


def wait_for_line(log_path, pattern, proc, timeout=30):
    """The first match of `pattern` in the browser's log (it prints where it listens)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(pattern, log_path.read_text(errors="replace"))
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise Failure(f"browser exited ({proc.returncode}); see {log_path}")
        time.sleep(0.1)
    raise Failure(f"no {pattern!r} in {log_path} after {timeout} s")


class ChromiumPage:
    """The first page target of a Chromium started with --remote-debugging-port=0."""

    def __init__(self, proc, log_path):
        url = wait_for_line(log_path, r"DevTools listening on (ws://\S+)", proc)
        self.rpc = Rpc(url)
        end = time.monotonic() + 30
        while True:
            pages = [t for t in self.rpc.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages:
                break
            if time.monotonic() > end:
                raise Failure("Chromium has no page")
            time.sleep(0.1)
        attached = self.rpc.call("Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True})
        self.session = attached["sessionId"]

    def cmd(self, method, params=None):
        return self.rpc.call(method, params, sessionId=self.session)

    def evaluate(self, expression):
        r = self.cmd("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return r["result"].get("value")

    def close(self):
        self.rpc.close()


class FirefoxPage:
    """The first browsing context of a Firefox started with --remote-debugging-port."""

    def __init__(self, proc, log_path):
        url = wait_for_line(log_path, r"WebDriver BiDi listening on (ws://\S+)", proc)
        self.rpc = Rpc(url.rstrip("/") + "/session")
        self.rpc.call("session.new", {"capabilities": {}})
        self.context = self.rpc.call("browsingContext.getTree")["contexts"][0]["context"]

    def evaluate(self, expression):
        r = self.rpc.call("script.evaluate", {"expression": expression, "awaitPromise": False,
                                               "target": {"context": self.context}})
        if r.get("type") != "success":
            raise Failure(f"script.evaluate: {r}")
        return r["result"].get("value")

    def close(self):
        self.rpc.close()


def attach(browser, proc, log_path):
    return (ChromiumPage if browser.name == "chromium" else FirefoxPage)(proc, log_path)


def settled(page, previous=None):
    """The page's state once its live check has answered (and differs from `previous`)."""
    end = time.monotonic() + RESULT_TIMEOUT
    state = None
    while time.monotonic() < end:
        raw = page.evaluate(STATE_JS)
        state = json.loads(raw) if raw else None
        if state and state["chk"].startswith((TRUSTED[:10], NOT_TRUSTED[:10])) and state != previous:
            return state
        time.sleep(0.1)
    raise Failure(f"the live check did not answer in {RESULT_TIMEOUT} s: {state}")


def fingerprint(ca_file):
    out = subprocess.run(["openssl", "x509", "-fingerprint", "-sha256", "-noout", "-in", str(ca_file)],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def rejected(stats):
    return sum(stats[c] for c in ("uca", "ucb", "uce"))


def check(browser, pixelserv, ca_file, work, stop_browser, rows):
    """Runs both profiles in `browser`; returns the problems found."""
    url = f"http://127.0.0.1:{pixelserv.http}/"
    want_fp = fingerprint(ca_file)
    problems = []
    for label, ca, want in (("trusted", ca_file, TRUSTED), ("control", None, NOT_TRUSTED)):
        root = work / f"{browser.name}-setup-{label}"
        log_path = work / f"{browser.name}-setup-{label}.log"
        profile = browser.profile(root, ca)
        started = time.monotonic()
        with open(log_path, "w") as log:
            proc = browser.launch(profile, url, log, remote=True)
            try:
                page = attach(browser, proc, log_path)
                try:
                    state = settled(page)
                    ms = round((time.monotonic() - started) * 1000)
                    if state["chk"] != want:
                        problems.append(f"setup page, {label} profile: says {state['chk']!r}, expected {want!r}")
                    if state["fp"] != want_fp:
                        problems.append(f"setup page, {label} profile: fingerprint {state['fp']!r}, "
                                        f"openssl says {want_fp!r}")
                    again = ""
                    if label == "control":
                        before = rejected(pixelserv.stats())
                        page.evaluate("document.getElementById('chk').textContent = 'x';"
                                      "document.getElementById('again').click(); 1")
                        state = settled(page, {"chk": "x"})
                        grew = rejected(pixelserv.stats()) - before
                        again = f"; check again: {state['chk']} ({grew:.0f} more rejected)"
                        if state["chk"] != want or grew < 1:
                            problems.append(f"setup page, control: Check again said {state['chk']!r} "
                                            f"after {grew:.0f} more rejected handshakes")
                    rows.append((browser.name, f"setup page, {label}", state["chk"] + again, ms))
                finally:
                    page.close()
            finally:
                stop_browser(proc)
    return problems


def screenshot(chromium, pixelserv, ca_file, work, stop_browser, path, width=390, height=1160):
    """The page as an iPhone-sized Chromium shows it, once the live check has answered."""
    profile = chromium.profile(work / "screenshot", ca_file)
    log_path = work / "screenshot.log"
    with open(log_path, "w") as log:
        proc = chromium.launch(profile, "about:blank", log, remote=True)
        try:
            page = ChromiumPage(proc, log_path)
            try:
                page.cmd("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
                page.cmd("Emulation.setUserAgentOverride", {"userAgent": IPHONE_UA})
                page.cmd("Page.enable")
                page.cmd("Page.navigate", {"url": f"http://127.0.0.1:{pixelserv.http}/"})
                state = settled(page)
                if state["chk"] != TRUSTED:
                    raise Failure(f"screenshot: the page says {state['chk']!r}")
                png = page.cmd("Page.captureScreenshot", {"format": "png"})["data"]
            finally:
                page.close()
        finally:
            stop_browser(proc)
    path.write_bytes(base64.b64decode(png))
    return state
