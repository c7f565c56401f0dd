"""Helpers the memory tools share (tools/xc-mem.py, tools/vm-router.py): a free loopback
port, and one HTTP/1.1 request and its response on an open socket."""

import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(sock, host, path="/x.gif"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("short body")
        body += chunk
    if int(head.split(b" ")[1]) != 200:
        raise RuntimeError(f"HTTP {head.split(b' ')[1]}")
    return body
