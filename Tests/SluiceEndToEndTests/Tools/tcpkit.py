#!/usr/bin/env python3
"""Small TCP server and clients the end-to-end tests run inside network namespaces.

Server protocol: the client sends one command line, then:
  WHO            -> "peer=<ip>:<port> local=<ip>:<port>\n", then close
  ECHO           -> everything received is sent back; on EOF the server closes too
  SINK           -> read to EOF, reply "got <n> <sha256>\n", then close (client half-closes first)
  SEND <n>       -> send n deterministic bytes, then close
  FINFIRST <n>   -> send n bytes, shut down writing, then read to EOF (logged), then close
Every finished connection appends one JSON line to --log (peer, command, bytes received, sha256).
"""
import argparse
import hashlib
import json
import signal
import socket
import sys
import threading
import time

CHUNK = 65536


def pattern(n):
    block = bytes(range(256)) * 256
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


def addr(sockaddr):
    host, port = sockaddr[0], sockaddr[1]
    if host.startswith("::ffff:"):
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        part = conn.recv(1)
        if not part:
            break
        data += part
    return data.decode().strip()


def read_all(conn):
    digest = hashlib.sha256()
    total = 0
    while True:
        part = conn.recv(CHUNK)
        if not part:
            return total, digest.hexdigest()
        total += len(part)
        digest.update(part)


def send_pattern(conn, n):
    block = pattern(min(n, 1 << 20))
    sent = 0
    while sent < n:
        piece = block[: min(len(block), n - sent)]
        conn.sendall(piece)
        sent += len(piece)


class Server:
    def __init__(self, host, port, log):
        self.log = log
        self.lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind((host, port))
        self.sock.listen(1024)

    def record(self, entry):
        if not self.log:
            return
        with self.lock, open(self.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def handle(self, conn, peer):
        entry = {"peer": addr(peer), "local": addr(conn.getsockname())}
        try:
            command = read_line(conn)
            entry["command"] = command
            verb, *args = command.split() or [""]
            if verb == "WHO":
                conn.sendall(f"peer={entry['peer']} local={entry['local']}\n".encode())
            elif verb == "ECHO":
                while True:
                    part = conn.recv(CHUNK)
                    if not part:
                        break
                    conn.sendall(part)
            elif verb == "SINK":
                total, digest = read_all(conn)
                entry["received"], entry["sha256"] = total, digest
                conn.sendall(f"got {total} {digest}\n".encode())
            elif verb == "SEND":
                send_pattern(conn, int(args[0]))
            elif verb == "FINFIRST":
                send_pattern(conn, int(args[0]))
                conn.shutdown(socket.SHUT_WR)
                total, digest = read_all(conn)
                entry["received"], entry["sha256"] = total, digest
            else:
                conn.sendall(b"unknown command\n")
        except OSError as error:
            entry["error"] = str(error)
        finally:
            conn.close()
            self.record(entry)

    def run(self):
        print("ready", flush=True)
        while True:
            conn, peer = self.sock.accept()
            threading.Thread(target=self.handle, args=(conn, peer), daemon=True).start()


def connect(target, timeout):
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    conn = socket.socket(family, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    conn.connect((host, int(port)))
    return conn


def client(args):
    conn = connect(args.connect, args.timeout)
    command = args.command
    if command == "WHO":
        conn.sendall(b"WHO\n")
        sys.stdout.write(read_line(conn) + "\n")
    elif command == "SINK":
        # Send n bytes, half-close, and expect the server's summary: the reverse direction
        # must still work after our FIN.
        conn.sendall(b"SINK\n")
        send_pattern(conn, args.bytes)
        conn.shutdown(socket.SHUT_WR)
        sys.stdout.write(read_line(conn) + "\n")
        sys.stdout.write(f"expected {args.bytes} {hashlib.sha256(pattern(args.bytes)).hexdigest()}\n")
    elif command == "FINFIRST":
        # The server sends n bytes and half-closes; we keep sending n bytes after its FIN.
        conn.sendall(f"FINFIRST {args.bytes}\n".encode())
        total, digest = read_all(conn)
        sys.stdout.write(f"received {total} {digest}\n")
        send_pattern(conn, args.bytes)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
    elif command == "HOLD":
        # A long-lived connection: one echoed line every 100 ms for --seconds; any break fails.
        conn.sendall(b"ECHO\n")
        rounds = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            line = f"ping {rounds}\n".encode()
            conn.sendall(line)
            received = b""
            while len(received) < len(line):
                part = conn.recv(len(line) - len(received))
                if not part:
                    sys.stdout.write(f"broken after {rounds} rounds\n")
                    return
                received += part
            if received != line:
                sys.stdout.write(f"corrupt after {rounds} rounds\n")
                return
            rounds += 1
            time.sleep(0.1)
        sys.stdout.write(f"held {rounds} ok\n")
    elif command == "SLOWREAD":
        # Ask for a large stream and read it slowly: the proxy must hold back, not buffer it all.
        conn.sendall(f"SEND {args.bytes}\n".encode())
        total = 0
        digest = hashlib.sha256()
        slow_until = time.monotonic() + args.slow_for
        while True:
            part = conn.recv(args.read_size)
            if not part:
                break
            total += len(part)
            digest.update(part)
            if time.monotonic() < slow_until:
                time.sleep(args.delay)
        expected = hashlib.sha256(pattern(args.bytes)).hexdigest()
        sys.stdout.write(f"received {total} {'ok' if digest.hexdigest() == expected else 'corrupt'}\n")
    conn.close()


def main():
    # The test runner may hand us SIGTERM ignored or blocked; teardown relies on it ending us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server")
    server.add_argument("--host", default="::")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--log")
    cli = sub.add_parser("client")
    cli.add_argument("--connect", required=True)
    cli.add_argument("--command", required=True)
    cli.add_argument("--bytes", type=int, default=0)
    cli.add_argument("--read-size", type=int, default=16384)
    cli.add_argument("--delay", type=float, default=0.0)
    cli.add_argument("--slow-for", type=float, default=1e9, help="seconds of slow reading before reading at full speed")
    cli.add_argument("--timeout", type=float, default=30)
    cli.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    if args.mode == "server":
        Server(args.host, args.port, args.log).run()
    else:
        client(args)


if __name__ == "__main__":
    main()
