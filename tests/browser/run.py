#!/usr/bin/env python3
"""Real-browser test: headless Chromium and Firefox ESR (Debian's packages) load page.html,
whose images, scripts and credentialed CORS fetch()es come from never-seen HTTPS names served
by the real pixelserv-tls binary. Each browser trusts only the CA it downloaded from the
server's /ca.crt, in a fresh profile; names resolve to 127.0.0.1 through the browser's own
settings (nothing in /etc/hosts), and URLs carry the server's high TLS port.

Per browser:
  visit 1  new names, new browser process (the server makes every certificate meanwhile)
  visit 2  the same page again in the same process (a reload)
  visit 3  the same names in a new browser process (certificates cached by the server)
  control  a profile without the CA: every load must fail
  setup    the server's setup page at http://127.0.0.1:PORT/ (setup_page.py): "trusted" in a
           profile that trusts the CA, "not trusted" in one that does not, and the fingerprint
           of ca.crt
Every load of visits 1-3 must succeed; the server must have made exactly one certificate
per new name and refused no handshake for want of one. Exit 0 only then.

Usage: run.py --server PATH [--names N] [--browsers chromium,firefox] [--setup-only]
       run.py --server PATH --screenshot PNG   (the setup page at phone width, Chromium)
Needs: python3, chromium, firefox-esr, certutil (libnss3-tools).
"""

import argparse
import http.server
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import setup_page

HERE = Path(__file__).resolve().parent
RESULT_TIMEOUT = 60  # seconds per visit; the page itself gives up on a load after 30 s
CONTROL_NAMES = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PageServer:
    """Serves page.html and receives the page's report on POST /result."""

    def __init__(self):
        page = (HERE / "page.html").read_bytes()
        results = queue.Queue()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/page.html":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(204)
                self.end_headers()
                if self.path == "/result":
                    results.put(json.loads(body))

            def log_message(self, *args):
                pass

        self.results = results
        # Port 0: the kernel picks a free one, no race with parallel runs.
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, **query):
        qs = "&".join(f"{k}={urllib.request.quote(str(v), safe='')}" for k, v in query.items())
        return f"http://127.0.0.1:{self.port}/page.html?{qs}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Pixelserv:
    """The real binary in the foreground on two free loopback ports, fresh CERT_PATH."""

    def __init__(self, binary, workdir):
        self.log = []
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        why = ""
        for _ in range(5):
            self.http, self.https = free_port(), free_port()
            certs = workdir / f"certs-{self.https}"
            certs.mkdir()
            args = [binary, "-f", "-u", user, "-l", "1", "-p", str(self.http),
                    "-k", str(self.https), "-z", str(certs), "127.0.0.1"]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            if self._wait_listening(2, 20):
                return
            self.stop()
            why = "\n".join(self.log[-20:])
        raise SystemExit(f"pixelserv-tls did not start:\n{why}")

    def _wait_listening(self, ports, timeout):
        ready = threading.Event()

        def reader():
            listening = 0
            for line in self.proc.stderr:
                self.log.append(line.rstrip("\n"))
                if "Listening on" in line:
                    listening += 1
                    if listening == ports:
                        ready.set()
            ready.set()  # stderr closed: the process is gone

        threading.Thread(target=reader, daemon=True).start()
        return ready.wait(timeout) and self.proc.poll() is None

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
            return r.read()

    def stats(self):
        """The /servstats.txt counters by name (the line after the version line)."""
        line = self.get("/servstats.txt").decode().splitlines()[1]
        pairs = (item.split(" ", 1) for item in line.strip().split(", "))
        return {name: float(value) for value, name in pairs}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def certutil_db(db, ca_file):
    """A new NSS database in `db`; trusts `ca_file` for TLS servers when given."""
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    if ca_file:
        subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "pixelserv-tls test CA",
                        "-t", "C,,", "-i", str(ca_file)], check=True)


class Browser:
    """One browser install; `profile(dir, ca)` prepares a fresh profile, `launch` starts it."""

    name = ""

    def version(self):
        out = subprocess.run([self.cmd, "--version"], capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else self.cmd


class Chromium(Browser):
    name = "chromium"
    cmd = "chromium"

    def profile(self, root, ca_file):
        # Chromium on Linux reads user trust from $HOME/.pki/nssdb.
        home = root / "home"
        certutil_db(home / ".pki" / "nssdb", ca_file)
        return {"home": home, "data": root / "data"}

    def launch(self, profile, url, log, remote=False):
        env = dict(os.environ, HOME=str(profile["home"]))
        # Port 0: Chromium picks one and prints "DevTools listening on ws://...".
        debug = ["--remote-debugging-port=0"] if remote else []
        args = [
            self.cmd, "--headless=new", f"--user-data-dir={profile['data']}",
            # Root (CI) cannot use the sandbox; the pages are our own.
            "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            # Every name to loopback; the port stays the one in the URL (the server's -k).
            "--host-resolver-rules=MAP * 127.0.0.1",
            *debug,
            url,
        ]
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


FIREFOX_PREFS = {
    # Every name to loopback without /etc/hosts; no DNS-over-HTTPS.
    "network.dns.forceResolve": "127.0.0.1",
    "network.trr.mode": 5,
    "network.proxy.type": 0,
    # Trust comes only from this profile's cert9.db.
    "security.enterprise_roots.enabled": False,
    # A quiet first start: no welcome pages, updates, telemetry or background checks.
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.tabs.warnOnClose": False,
}


class Firefox(Browser):
    name = "firefox"
    cmd = "firefox-esr"

    def profile(self, root, ca_file):
        prof = root / "profile"
        certutil_db(prof, ca_file)
        prefs = "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in FIREFOX_PREFS.items())
        (prof / "user.js").write_text(prefs)
        home = root / "home"
        home.mkdir()
        return {"home": home, "dir": prof}

    def launch(self, profile, url, log, remote=False):
        env = dict(os.environ, HOME=str(profile["home"]), MOZ_CRASHREPORTER_DISABLE="1")
        # Port 0: Firefox picks one and prints "WebDriver BiDi listening on ws://...".
        debug = ["--remote-debugging-port", "0"] if remote else []
        args = [self.cmd, "--headless", "--no-remote", "--profile", str(profile["dir"]), *debug, url]
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_browser(proc):
    """Ends the browser and every process it started (its own session/process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    # Children that outlived the leader.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Failure(Exception):
    pass


def take_result(pages, proc, visit, log_file):
    end = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < end:
        try:
            report = pages.results.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                raise Failure(f"browser exited ({proc.returncode}) before visit {visit} reported; "
                              f"see {log_file}")
            continue
        if report["visit"] == visit:
            (log_file.parent / f"{log_file.stem}-visit-{visit}.json").write_text(json.dumps(report, indent=1))
            return report
    raise Failure(f"no report for visit {visit} in {RESULT_TIMEOUT} s; see {log_file}")


def summary(report):
    """(loads ok, loads, names whose every load succeeded, slowest load in ms)."""
    results = report["results"]
    ok = [r for r in results if r["ok"]]
    hosts_ok = {r["host"] for r in results} - {r["host"] for r in results if not r["ok"]}
    slowest = max((r["ms"] for r in results), default=0)
    return len(ok), len(results), len(hosts_ok), slowest


def run_browser(browser, pixelserv, pages, ca_file, work, names, rows):
    tag = f"{browser.name}-{secrets.token_hex(3)}"
    root = work / tag
    log_path = work / f"{tag}.log"
    with open(log_path, "w") as log:
        profile = browser.profile(root / "trusted", ca_file)
        base = dict(n=names, prefix=tag, port=pixelserv.https)

        before = pixelserv.stats()
        # Visit 1, then the page reloads itself as visit 2 in the same process.
        url = pages.url(**base, visit="1", next=pages.url(**base, visit="2"))
        proc = browser.launch(profile, url, log)
        try:
            first = take_result(pages, proc, "1", log_path)
            after_first = pixelserv.stats()
            second = take_result(pages, proc, "2", log_path)
        finally:
            stop_browser(proc)
        proc = browser.launch(profile, pages.url(**base, visit="3"), log)
        try:
            third = take_result(pages, proc, "3", log_path)
        finally:
            stop_browser(proc)
        after = pixelserv.stats()

        control_profile = browser.profile(root / "untrusted", None)
        cbase = dict(n=CONTROL_NAMES, prefix=f"{tag}-control", port=pixelserv.https)
        before_control = pixelserv.stats()
        proc = browser.launch(control_profile, pages.url(**cbase, visit="control"), log)
        try:
            control = take_result(pages, proc, "control", log_path)
        finally:
            stop_browser(proc)
        after_control = pixelserv.stats()

    made_first = after_first["cgn"] - before["cgn"]
    made_later = after["cgn"] - after_first["cgn"]
    refused = after["slm"] - before["slm"]
    problems = []
    for label, report in (("visit 1 (new names, new process)", first),
                          ("visit 2 (reload, same process)", second),
                          ("visit 3 (known names, new process)", third)):
        ok, total, hosts, slowest = summary(report)
        rows.append((browser.name, label, f"{hosts}/{names}", f"{ok}/{total}", report["page_ms"], slowest))
        if total != 3 * names or ok != total:
            bad = [r for r in report["results"] if not r["ok"]][:5]
            problems.append(f"{label}: {ok}/{total} loads succeeded, e.g. {bad}")
    ok, total, hosts, slowest = summary(control)
    rows.append((browser.name, "control (CA not trusted)", f"{hosts}/{CONTROL_NAMES}", f"{ok}/{total}",
                 control["page_ms"], slowest))
    if total != 3 * CONTROL_NAMES or ok != 0:
        good = [r for r in control["results"] if r["ok"]][:5]
        problems.append(f"control: {ok}/{total} loads succeeded without trusting the CA, e.g. {good}")
    # The loads must have failed on our certificate, not before reaching the server.
    rejected = sum(after_control[c] - before_control[c] for c in ("uca", "ucb", "uce"))
    accepted = after_control["slh"] - before_control["slh"]
    if rejected == 0 or accepted != 0:
        problems.append(f"control: {rejected:.0f} handshakes rejected our certificate (uca/ucb/uce), "
                        f"{accepted:.0f} completed; expected some and none")
    if made_first != names:
        problems.append(f"visit 1 made {made_first:.0f} certificates, expected {names}")
    if made_later != 0:
        problems.append(f"visits 2-3 made {made_later:.0f} certificates, expected 0")
    if refused != 0:
        problems.append(f"{refused:.0f} handshakes refused for want of a certificate (slm)")
    return made_first, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="pixelserv-tls binary")
    ap.add_argument("--names", type=int, default=60, help="never-seen HTTPS names per browser")
    ap.add_argument("--browsers", default="chromium,firefox")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (profiles, logs)")
    ap.add_argument("--setup-only", action="store_true", help="only the setup page checks")
    ap.add_argument("--screenshot", metavar="PNG", help="only save the setup page at phone width")
    args = ap.parse_args()
    if args.screenshot:
        args.browsers = "chromium"

    known = {b.name: b for b in (Chromium(), Firefox())}
    browsers = [known[b] for b in args.browsers.split(",")]
    for tool in ["certutil"] + [b.cmd for b in browsers]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install chromium firefox-esr libnss3-tools)")

    work = Path(tempfile.mkdtemp(prefix="pixelserv-browser-"))
    pixelserv = Pixelserv(str(Path(args.server).resolve()), work)
    pages = PageServer()
    rows, setup_rows, failures = [], [], []
    started = time.monotonic()
    try:
        ca_pem = pixelserv.get("/ca.crt")
        if not ca_pem.startswith(b"-----BEGIN CERTIFICATE-----") or b"PRIVATE KEY" in ca_pem:
            raise SystemExit(f"/ca.crt is not a lone certificate: {ca_pem[:80]!r}")
        ca_file = work / "downloaded-ca.crt"
        ca_file.write_bytes(ca_pem)
        if args.screenshot:
            out = Path(args.screenshot)
            state = setup_page.screenshot(browsers[0], pixelserv, ca_file, work, stop_browser, out)
            print(f"{out}: {out.stat().st_size} bytes; the page says {state['chk']!r}")
            shutil.rmtree(work, ignore_errors=True)
            return
        for b in browsers:
            try:
                if not args.setup_only:
                    made, problems = run_browser(b, pixelserv, pages, ca_file, work, args.names, rows)
                    print(f"{b.name}: {b.version()}; certificates made on visit 1: {made:.0f}")
                    failures += [f"{b.name}: {p}" for p in problems]
                problems = setup_page.check(b, pixelserv, ca_file, work, stop_browser, setup_rows)
                failures += [f"{b.name}: {p}" for p in problems]
            except (Failure, setup_page.Failure) as e:
                failures.append(f"{b.name}: {e}")
    finally:
        pages.close()
        pixelserv.stop()

    for head, table in ((("browser", "visit", "names ok", "loads ok", "page ms", "slowest load ms"), rows),
                        (("browser", "profile", "the page says", "ms to the answer"), setup_rows)):
        if not table:
            continue
        widths = [max(len(str(r[i])) for r in table + [head]) for i in range(len(head))]
        for r in [head] + table:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"time: {time.monotonic() - started:.1f} s")
    for f in failures:
        print("FAIL", f)
    if failures or args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    checks = len(browsers)
    failed = len({f.split(":")[0] for f in failures})
    print(f"browsers: {checks - failed} passed, {failed} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
