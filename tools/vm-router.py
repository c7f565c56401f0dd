#!/usr/bin/env python3
"""The router the design names, emulated: a 256 MB ARM board with Debian's kernel and
busybox, running the router binary as the Entware package starts it, measured from the host
through qemu's user network (hostfwd to 127.0.0.1 only). --arch picks the board:

  armv7    qemu-system-arm -M vexpress-a9 -cpu cortex-a9, linux-image-armmp (armhf) and its
           vexpress-v2p-ca9.dtb
  aarch64  qemu-system-aarch64 -M virt -cpu cortex-a53, linux-image-arm64 (qemu makes the
           device tree)

    tools/vm-router.py [--arch armv7] --root target/vm/armhf/root \\
        --bin dist/pixelserv-tls-armv7-static [--conns 10000] [--flood 30000] [--boot-only]

--root is the packages unpacked with dpkg -x (linux-image-*, busybox-static), see
`make -f Makefile.xc vm-armv7` and `vm-aarch64`. Prints one table:

  point                         guest MemAvailable   server RSS
  before start / started, idle / N idle TLS 1.3 connections held / 10 s after they close

and kB per connection (server RSS, and all-in: the guest's MemAvailable drop). Then, with a
fresh boot at the default -T, --flood attempts (connections that send nothing, as a scanner
or a stuck client would), with first visits of new names verified during it.

The guest prints "MEM <MemAvailable kB> <server VmRSS kB> <TCP sockets> <seccomp modes>" on its
console every second (server: the sum over its processes); the host reads the console file. Nothing leaves the guest but the forwarded ports (restrict=on).
"""

import argparse
import gzip
import os
import resource
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time

from pxclient import free_port, get

# virtio-net on the board's virtio-mmio transports. Both Debian kernels build virtio itself in
# and these four as modules (config-*: CONFIG_VIRTIO_MMIO=m, CONFIG_VIRTIO_NET=m, ...),
# loaded in this order (no modules.dep: dpkg -x runs no depmod).
VIRTIO_MMIO_NET = ["kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko",
                   "kernel/drivers/virtio/virtio_mmio.ko", "kernel/drivers/net/virtio_net.ko"]
# qemu, board, CPU, device tree (None: qemu's own, for -M virt; else a file of the kernel
# package's /usr/lib/linux-image-<version>), kernel modules, kernel arguments. The console is
# the board's PL011 (ttyAMA0) on both.
# cma=16M: Debian's arm64 kernel sets aside 64 MB of the 256 for the contiguous allocator
# (CONFIG_CMA_SIZE_MBYTES=64, for GPUs and cameras), which user pages may use but the
# kernel's own allocations (sockets) may not: with 10,000 connections held the kernel ran out
# while 10 MB of CMA were free and the OOM killer took the network process. The armhf kernel
# sets aside 16 MB; both boards now do.
ARCHES = {
    "armv7": {"qemu": "qemu-system-arm", "machine": "vexpress-a9", "cpu": "cortex-a9",
              "dtb": "vexpress-v2p-ca9.dtb", "modules": VIRTIO_MMIO_NET, "append": ""},
    "aarch64": {"qemu": "qemu-system-aarch64", "machine": "virt", "cpu": "cortex-a53",
                "dtb": None, "modules": VIRTIO_MMIO_NET, "append": "cma=16M "},
}

# As include-docs/init/S80pixelserv-tls starts it (daemonizes, drops to nobody), with the
# guest's address; EXTRA comes from the kernel command line (pixelserv.args=).
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/modules); do insmod /lib/modules/$m; done
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
route add default gw 10.0.2.2
echo 65535 > /proc/sys/net/core/somaxconn
echo 1024 65535 > /proc/sys/net/ipv4/ip_local_port_range
mem() { awk '/^MemAvailable/ { print $2 }' /proc/meminfo; }
# Every pixelserv-tls process (the monitor, the signer, the network process): RSS summed,
# and each one's seccomp mode (2: filtered), e.g. 0,0,2; and the guest's TCP sockets (the
# server's, as nothing else listens or connects). Not `ls /proc/PID/fd`: with 10,000
# descriptors that makes 10,000 proc inodes and dentries, ~9 MB of kernel memory, each time.
rss() {
	r=0 s=
	for p in $(pidof pixelserv-tls); do
		r=$((r + $(awk '/^VmRSS/ { print $2 }' /proc/$p/status)))
		s=$s${s:+,}$(awk '/^Seccomp:/ { print $2 }' /proc/$p/status)
	done
	echo "$r $(awk '/^TCP:/ { print $3 }' /proc/net/sockstat) $s"
}
sleep 2
echo "BEFORE $(mem)"
args=$(sed -n 's/.*pixelserv.args=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
/opt/sbin/pixelserv-tls -z /opt/var/cache/pixelserv $args 10.0.2.15
echo "STARTED $?"
while :; do
	echo "MEM $(mem) $(rss)"
	dmesg -c | grep -i -E 'oom|killed' | sed 's/^/KERNEL /'
	sleep 1
done
"""


def cpio(entries):
    """newc archive of (name, mode, data or (major, minor) for a device)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        rdev = (0, 0)
        if isinstance(data, tuple):
            rdev, data = data, b""
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + nb
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def initramfs(root, binary, modules, path):
    kdir = os.path.join(root, "lib/modules")
    kver = sorted(os.listdir(kdir))[-1]
    d, f, x = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    rd = lambda p: open(p, "rb").read()  # noqa: E731
    entries = [(n, d, b"") for n in ["bin", "dev", "proc", "sys", "etc", "lib", "lib/modules",
                                     "opt", "opt/sbin", "opt/var", "opt/var/cache", "tmp",
                                     "opt/var/cache/pixelserv"]]
    entries += [
        ("dev/console", stat.S_IFCHR | 0o600, (5, 1)),
        ("init", x, INIT.encode()),
        ("bin/busybox", x, rd(os.path.join(root, "bin/busybox"))),
        ("etc/passwd", f, b"root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
        ("etc/group", f, b"root:x:0:\nnogroup:x:65534:\n"),
        ("opt/sbin/pixelserv-tls", x, rd(binary)),
        ("etc/modules", f, "".join(os.path.basename(m) + "\n" for m in modules).encode()),
    ]
    for m in modules:
        entries.append(("lib/modules/" + os.path.basename(m), f,
                        rd(os.path.join(kdir, kver, m))))
    with open(path, "wb") as o:
        o.write(gzip.compress(cpio(entries), 6))
    return kver


class Guest:
    def __init__(self, a, args, work):
        arch = ARCHES[a.arch]
        kver = initramfs(a.root, a.bin, arch["modules"], os.path.join(work, "initrd.gz"))
        self.console = os.path.join(work, "console.log")
        open(self.console, "w").close()
        self.http, self.https = free_port(), free_port()
        fwd = f"hostfwd=tcp:127.0.0.1:{self.http}-:80,hostfwd=tcp:127.0.0.1:{self.https}-:443"
        cmd = [arch["qemu"], "-M", arch["machine"], "-cpu", arch["cpu"], "-m", "256M",
               "-kernel", os.path.join(a.root, f"boot/vmlinuz-{kver}"),
               "-initrd", os.path.join(work, "initrd.gz"),
               "-append", f"console=ttyAMA0 rdinit=/init quiet {arch['append']}"
                          f"pixelserv.args={args}",
               "-netdev", f"user,id=n0,restrict=on,{fwd}",
               "-device", "virtio-net-device,netdev=n0",
               "-display", "none", "-monitor", "none", "-audiodev", "none,id=snd0",
               "-serial", f"file:{self.console}"]
        if arch["dtb"]:
            cmd += ["-dtb", os.path.join(a.root, f"usr/lib/linux-image-{kver}", arch["dtb"])]
        self.t0 = time.monotonic()
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.before = int(self.wait_line("BEFORE ", 120).split()[1])
        self.wait_http()
        self.boot_s = time.monotonic() - self.t0

    def lines(self):
        with open(self.console, errors="replace") as c:
            return c.read().splitlines()

    def wait_line(self, prefix, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.qemu.poll() is not None:
                raise RuntimeError("qemu exited")
            found = [ln for ln in self.lines() if ln.startswith(prefix)]
            if found:
                return found[-1]
            time.sleep(0.2)
        raise RuntimeError(f"no '{prefix}' on the console in {secs} s")

    def mem(self, fresh=True):
        """(MemAvailable, server RSS) from a console line printed after this call."""
        seen = len(self.lines())
        while fresh:
            new = [ln for ln in self.lines()[seen:] if ln.startswith("MEM ")]
            if new:
                break
            time.sleep(0.2)
        last = [ln for ln in self.lines() if ln.startswith("MEM ")][-1].split()
        self.sockets = int(last[3])
        self.seccomp = last[4] if len(last) > 4 else "?"
        return int(last[1]), int(last[2])

    def settled(self):
        prev = self.mem()
        for _ in range(15):
            now = self.mem()
            if abs(now[1] - prev[1]) < 64:
                return now
            prev = now
        return prev

    def kernel_complaints(self):
        return [ln for ln in self.lines() if ln.startswith("KERNEL ")]

    def wait_http(self):
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", self.http), timeout=5) as s:
                    get(s, "ready.example.com")
                return
            except (OSError, RuntimeError):
                if self.qemu.poll() is not None:
                    raise RuntimeError("qemu exited")
                time.sleep(0.5)
        raise RuntimeError("HTTP never answered")

    def ca(self, work):
        with socket.create_connection(("127.0.0.1", self.http), timeout=30) as s:
            body = get(s, "ready.example.com", "/ca.crt")
        path = os.path.join(work, "ca.crt")
        with open(path, "wb") as o:
            o.write(body)
        ctx = ssl.create_default_context(cafile=path)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return ctx

    def stop(self):
        self.qemu.terminate()
        self.qemu.wait()




def tls_get(ctx, port, name, timeout=120):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    # Else Nagle holds the request behind the client's Finished until the server's delayed
    # ACK (40 ms) when the server sends its session ticket with the response.
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=name)
    get(s, name)
    return s


def first_visits(ctx, port, tag, n, result, stop=None):
    """n never-seen names, each verified against the CA; counts into result."""
    for i in range(n):
        if stop is not None and stop.is_set():
            return
        try:
            tls_get(ctx, port, f"www.fv{i}-{tag}-{os.getpid()}.com").close()
            result["ok"] += 1
        except (OSError, RuntimeError, ssl.SSLError) as e:
            result["failed"] += 1
            result["last"] = str(e)


def open_many(ctx, port, names, n, threads=4):
    conns, failed = [], []
    lock = threading.Lock()

    def work(k):
        for i in range(k, n, threads):
            try:
                s = tls_get(ctx, port, names[i % len(names)])
                with lock:
                    conns.append(s)
            except (OSError, RuntimeError, ssl.SSLError) as e:
                with lock:
                    failed.append(str(e))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return conns, failed


def row(name, mem, rss):
    return f"| {name:<44} | {mem:>12,} kB | " + (f"{rss:>9,} kB |" if rss else f"{'—':>12} |")


def bench(a, work):
    # -O: held connections must outlive the time it takes to open them all.
    g = Guest(a, f"-T,{a.conns + 200},-O,3600", work)
    try:
        print(f"guest booted and serving in {g.boot_s:.1f} s "
              f"(HTTP 127.0.0.1:{g.http}, HTTPS 127.0.0.1:{g.https})", flush=True)
        ctx = g.ca(work)
        names = [f"www.ka{i}-bench.com" for i in range(8)]
        for n in names:
            tls_get(ctx, g.https, n).close()
        idle = g.settled()
        idle_sockets = g.sockets
        t = time.monotonic()
        fv = {"ok": 0, "failed": 0}
        visits = threading.Thread(target=first_visits, args=(ctx, g.https, "held", 50, fv))
        visits.start()
        print(f"before start: MemAvailable {g.before:,} kB; idle: {idle}; "
              f"seccomp modes {g.seccomp}", flush=True)
        conns, failed = open_many(ctx, g.https, names, a.conns)
        opened = time.monotonic() - t
        visits.join()
        held = g.settled()
        print(f"held: {held}", flush=True)
        alive = 0
        for c in conns[:: max(1, len(conns) // 200)]:
            get(c, "idle.bench")
            alive += 1
        t_close = time.monotonic()
        for c in conns:
            c.close()
        # The server closes them as the guest's network delivers the FINs; the RSS is read
        # 10 s after the last one is gone (and at 10 s after the host closed them).
        time.sleep(max(0.0, 10 - (time.monotonic() - t_close)))
        at10 = g.mem()
        print(f"10 s after the host closed them: {at10}, guest TCP sockets {g.sockets}",
              flush=True)
        while g.sockets > idle_sockets + 4 and time.monotonic() - t_close < 300:
            g.mem()
        gone = time.monotonic() - t_close
        time.sleep(10)
        after = g.mem()
        print(f"all closed in the server {gone:.0f} s after the host closed them", flush=True)
        n = len(conns)
        print(f"{n} TLS 1.3 connections opened in {opened:.0f} s, {len(failed)} failed"
              + (f" (last: {failed[-1]})" if failed else "")
              + f"; {alive} sampled answered again; first visits while opening: "
              f"{fv['ok']} verified, {fv['failed']} failed")
        print("| point                                        | guest MemAvailable | server RSS |")
        print("|---|---:|---:|")
        print(row("before start", g.before, 0))
        print(row("started, idle", *idle))
        print(row(f"{n:,} idle TLS 1.3 connections held", *held))
        print(row("10 s after the server has closed them all", *after))
        if n:
            print(f"per connection: {(held[1] - idle[1]) / n:.1f} kB server RSS, "
                  f"{(idle[0] - held[0]) / n:.1f} kB all-in (MemAvailable); "
                  f"MemAvailable drop {(idle[0] - held[0]) / 1024:.1f} MB; "
                  f"RSS 10 s after close - idle: {(after[1] - idle[1]) / 1024:.1f} MB")
        for k in g.kernel_complaints():
            print(k)
    finally:
        g.stop()


def flood(a, work):
    g = Guest(a, "", work)  # the default -T
    try:
        ctx = g.ca(work)
        idle = g.settled()
        fv = {"ok": 0, "failed": 0}
        stop = threading.Event()
        visits = threading.Thread(target=first_visits, args=(ctx, g.https, "flood", 10**6, fv, stop))
        visits.start()
        peak, held, refused, t = idle[1], [], 0, time.monotonic()
        for i in range(a.flood):
            try:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", g.https if i % 2 else g.http))
                held.append(s)
            except OSError:
                refused += 1
            if len(held) >= 4000:  # the host's descriptors: the oldest give up
                for s in held[:1000]:
                    s.close()
                del held[:1000]
            if i % 1000 == 999:
                peak = max(peak, g.mem(fresh=False)[1])
        spent = time.monotonic() - t
        low = g.mem()[0]
        for _ in range(30):  # while qemu's network and the server work through the backlog
            m = g.mem()
            peak, low = max(peak, m[1]), min(low, m[0])
        stop.set()
        visits.join()
        during = g.mem()
        for s in held:
            s.close()
        time.sleep(10)
        after = g.mem()
        print(f"flood at the default -T: {a.flood:,} connection attempts (silent: half HTTP, half "
              f"HTTPS) in {spent:.0f} s, {refused} refused by the host; first visits during it: "
              f"{fv['ok']} verified, {fv['failed']} failed")
        print(f"  server RSS idle {idle[1]:,} kB, peak seen {peak:,} kB, 10 s after "
              f"{after[1]:,} kB; guest MemAvailable idle {idle[0]:,} kB, lowest {low:,} kB, at the end "
              f"{during[0]:,} kB; out-of-memory kills: {len(g.kernel_complaints())}")
    finally:
        g.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHES), default="armv7")
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--flood", type=int, default=30000)
    ap.add_argument("--boot-only", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ours and qemu's (slirp)
    if a.conns + 1000 > hard:
        sys.exit(f"--conns {a.conns}: the descriptor limit is {hard}")
    work = tempfile.mkdtemp(prefix="vm-router-")
    t = time.monotonic()
    try:
        if a.boot_only:
            g = Guest(a, "", work)
            print(f"booted and serving in {g.boot_s:.1f} s; MemAvailable before start "
                  f"{g.before:,} kB; idle {g.settled()}; seccomp modes {g.seccomp}")
            g.stop()
            return
        bench(a, work)
        if a.flood:
            flood(a, work)
    finally:
        subprocess.run(["rm", "-rf", work], check=False)
    print(f"total {time.monotonic() - t:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError, ssl.SSLError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
