#!/usr/bin/env python3
"""Idle memory of a pixelserv-tls binary, natively or under qemu-user (guest view).

    tools/xc-mem.py [--qemu "qemu-arm -cpu cortex-a9"] [--conns N] BINARY

Starts BINARY on free loopback ports with its own CERT_PATH, makes one certificate
(an HTTPS first visit), then prints
  - idle RSS of each of its processes (monitor, signer, network), after that first visit;
  - kB per idle TLS connection: N keep-alive TLS 1.3 connections, each after one answered
    request (as tools/bench's idle figure does), held open: (network process's RSS with
    them - idle) / N;
  - the network process's RSS 10 s after they all close (memory back after a burst).

Under qemu-user the process's VmRSS is mostly qemu's own (its translated-code cache and
heap, ~20 MB). The guest view counts only pages inside the guest's address space: qemu is
started with its guest base at 0x100000000000 (QEMU_GUEST_BASE), so the guest's pages are
the mappings whose addresses start there (/proc/PID/smaps). Natively VmRSS is used.
"""

import argparse
import os
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from pxclient import free_port, get

GUEST_BASE = 0x100000000000
GUEST_SPAN = 1 << 40  # more than any guest here maps


def rss_kb(pid, guest, field="Rss"):
    if not guest and field == "Rss":
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and not head.endswith(":"):
                start = int(head.split("-")[0], 16)
                inside = not guest or GUEST_BASE <= start < GUEST_BASE + GUEST_SPAN
            elif inside and line.startswith(field + ":"):
                total += int(line.split()[1])
    return total


def settled_rss(pid, guest):
    """RSS once it stops moving (the loop may still be freeing after the last reply)."""
    last = rss_kb(pid, guest)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_kb(pid, guest)
        if now == last:
            return now
        last = now
    return last


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == pid:
            out.append(int(d))
    return out


def has_epoll(pid):
    try:
        return any("eventpoll" in os.readlink(f"/proc/{pid}/fd/{fd}")
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def roles(pid):
    """The server's processes: the monitor started, its signer and network children
    (include-docs/SECURITY.md, "Processes"); the network one holds the epoll descriptor."""
    for _ in range(100):
        kids = children(pid)
        net = [k for k in kids if has_epoll(k)]
        if len(kids) == 2 and len(net) == 1:
            signer = [k for k in kids if k != net[0]][0]
            return {"monitor": pid, "signer": signer, "network": net[0]}
        time.sleep(0.1)
    raise RuntimeError("no signer and network process under the monitor")


def tls_conn(ctx, port, name):
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    # Else Nagle holds the request behind the client's Finished until the server's delayed
    # ACK (40 ms) when the server sends its session ticket with the response.
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=name)
    get(s, name)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--qemu", default="", help="qemu-user command prefix")
    ap.add_argument("--conns", type=int, default=1000, help="idle TLS connections (1000)")
    a = ap.parse_args()

    qemu = shlex.split(a.qemu)
    env = dict(os.environ)
    if qemu:
        env["QEMU_GUEST_BASE"] = hex(GUEST_BASE)
    http, https = free_port(), free_port()
    certs = tempfile.mkdtemp(prefix="xc-mem-")
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    cmd = qemu + [a.binary, "-f", "-u", user, "-l", "1", "-T", str(a.conns + 100), "-O", "3600",
                  "-p", str(http), "-k", str(https), "-z", certs, "127.0.0.1"]
    log = open(os.path.join(certs, "server.log"), "w")
    srv = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    conns = []
    try:
        for _ in range(600):
            if srv.poll() is not None:
                raise RuntimeError("server exited at startup")
            try:
                with socket.create_connection(("127.0.0.1", http), timeout=5) as s:
                    get(s, "ready.example.com")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("HTTP never answered")

        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        names = [f"www.ka{i}-bench.com" for i in range(8)]
        for n in names:  # certificates made, code paths warm
            tls_conn(ctx, https, n).close()
        time.sleep(0.5)
        procs = roles(srv.pid)
        net = procs["network"]
        each = {r: settled_rss(p, bool(qemu)) for r, p in procs.items()}
        idle = each["network"]

        t = time.monotonic()
        for i in range(a.conns):
            conns.append(tls_conn(ctx, https, names[i % len(names)]))
        opened = time.monotonic() - t
        held = settled_rss(net, bool(qemu))
        for c in conns:  # still alive, not only held by the kernel
            get(c, "idle.bench")
        view = "guest view" if qemu else "VmRSS"
        print(f"binary: {a.binary}" + (f" under {a.qemu}" if qemu else ""))
        print(f"idle RSS ({view}): monitor {each['monitor']} kB, signer {each['signer']} kB, "
              f"network {idle} kB (each counts the pages they share)")
        pss = {r: rss_kb(p, bool(qemu), "Pss") for r, p in procs.items()}
        print(f"idle PSS (shared pages split between the processes): monitor "
              f"{pss['monitor']} kB, signer {pss['signer']} kB, network {pss['network']} kB")
        print(f"{a.conns} idle TLS connections: {held} kB, "
              f"{(held - idle) / a.conns:.1f} kB each (opened in {opened:.1f} s, all answered again)")
        for c in conns:
            c.close()
        conns = []
        time.sleep(10)
        after = rss_kb(net, bool(qemu))
        print(f"network process 10 s after they close: {after} kB "
              f"({(after - idle) / 1024:.1f} MB over idle)")
    finally:
        for c in conns:
            c.close()
        srv.terminate()
        srv.wait()
        log.close()
        subprocess.run(["rm", "-rf", certs], check=False)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
