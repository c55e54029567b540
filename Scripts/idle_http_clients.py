#!/usr/bin/env python3
"""Opens N keep-alive HTTP/1.1 connections, sends one request on each, reads the answer and
keeps every connection open and idle; prints "ready <ok>" and waits for stdin to close."""
import socket
import sys

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sockets = []
ok = 0
request = f"GET / HTTP/1.1\r\nhost: {host}\r\n\r\n".encode()
for _ in range(count):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        rest += s.recv(4096)
    ok += head.startswith(b"HTTP/1.1 200")
    sockets.append(s)
print(f"ready {ok}", flush=True)
sys.stdin.read()
