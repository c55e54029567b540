#!/usr/bin/env python3
"""HTTP peers for the end-to-end tests (HTTP/1.1, threads, no dependencies).

server --port P [--name N]   GET /bytes/<n> sends n deterministic bytes; POST /sink[/slow] reads
                             the body (slowly: 64 KiB every 10 ms) and answers its size and
                             sha256; GET /ws answers an Upgrade: websocket with 101 and then echoes
                             raw bytes; anything else answers 200 "hello from <name>".
upload --url URL --size N    POSTs N bytes, prints the server's answer.
download --url URL --size N [--slow]   reads the body (slowly: 64 KiB every 10 ms), prints its sha256.
websocket --host H --port P  upgrades, sends 1 MiB in pieces, checks the echo, prints "ok".
"""
import argparse
import hashlib
import http.client
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 65536


def pattern(n):
    block = bytes(range(256)) * 256
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = "server"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/bytes/"):
            size = int(self.path.split("/")[2])
            self.send_response(200)
            self.send_header("content-length", str(size))
            self.end_headers()
            data = pattern(size)
            for offset in range(0, size, CHUNK):
                self.wfile.write(data[offset:offset + CHUNK])
            return
        if self.path == "/ws" and self.headers.get("upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("upgrade", "websocket")
            self.send_header("connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            conn = self.connection
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break
                conn.sendall(data)
            self.close_connection = True
            return
        body = f"hello from {self.name}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        slow = self.path.endswith("/slow")
        remaining = int(self.headers.get("content-length") or 0)
        digest = hashlib.sha256()
        received = 0
        chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if chunked:
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data = self.rfile.read(size)
                self.rfile.readline()
                digest.update(data)
                received += len(data)
        while remaining > 0:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                break
            digest.update(data)
            received += len(data)
            remaining -= len(data)
            if slow:
                time.sleep(0.01)
        body = f"{received} {digest.hexdigest()}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    # The proxy opens a connection per concurrent request; the default backlog of 5 drops them.
    request_queue_size = 1024


def serve(port, name):
    handler = type("Named", (Handler,), {"name": name})
    server = Server(("0.0.0.0", port), handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def connect(url):
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    path = "/" + "/".join(url.split("/")[3:])
    return http.client.HTTPConnection(host, int(port), timeout=60), path


def upload(url, size):
    conn, path = connect(url)
    data = pattern(size)
    conn.request("POST", path, body=data, headers={"content-length": str(size)})
    response = conn.getresponse()
    answer = response.read().decode().strip()
    expected = f"{size} {hashlib.sha256(data).hexdigest()}"
    print("ok" if response.status == 200 and answer == expected else f"mismatch: {response.status} {answer}")


def download(url, size, slow):
    conn, path = connect(url)
    conn.request("GET", path)
    response = conn.getresponse()
    digest = hashlib.sha256()
    received = 0
    while True:
        data = response.read(CHUNK)
        if not data:
            break
        digest.update(data)
        received += len(data)
        if slow:
            time.sleep(0.01)
    ok = response.status == 200 and received == size and digest.hexdigest() == hashlib.sha256(pattern(size)).hexdigest()
    print("ok" if ok else f"mismatch: {response.status} {received}")


def websocket(host, port):
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall(f"GET /ws HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                 "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        if not data:
            print("closed during handshake")
            return
        head += data
    if not head.startswith(b"HTTP/1.1 101"):
        print("not upgraded: " + head.decode(errors="replace").splitlines()[0])
        return
    payload = pattern(1 << 20)
    received = bytearray()

    def reader():
        while len(received) < len(payload):
            data = sock.recv(CHUNK)
            if not data:
                break
            received.extend(data)

    thread = threading.Thread(target=reader)
    thread.start()
    for offset in range(0, len(payload), 10000):
        sock.sendall(payload[offset:offset + 10000])
    thread.join(30)
    print("ok" if bytes(received) == payload else f"mismatch: {len(received)} bytes")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", default="server")
    u = sub.add_parser("upload")
    u.add_argument("--url", required=True)
    u.add_argument("--size", type=int, required=True)
    d = sub.add_parser("download")
    d.add_argument("--url", required=True)
    d.add_argument("--size", type=int, required=True)
    d.add_argument("--slow", action="store_true")
    w = sub.add_parser("websocket")
    w.add_argument("--host", required=True)
    w.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.mode == "server":
        serve(args.port, args.name)
    elif args.mode == "upload":
        upload(args.url, args.size)
    elif args.mode == "download":
        download(args.url, args.size, args.slow)
    else:
        websocket(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
