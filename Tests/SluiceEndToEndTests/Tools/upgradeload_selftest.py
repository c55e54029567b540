#!/usr/bin/env python3
"""Self-test for upgradeload.py: proves the load generator sees what it must count.

    python3 upgradeload_selftest.py [--verbose]

Runs the server and the client as real processes on 127.0.0.1 (free ports), twice:
  1. clean: the client talks to the server directly (control on stdin); every failure counter
     must be zero, every stream must survive with both directions verified and the byte counts
     of both ends must agree.
  2. faults: a relay in this process sits between them and, on command, corrupts one byte of a
     keep-alive response, resets one keep-alive connection, stalls another until it times out,
     truncates one one-shot response, corrupts one byte of stream 1 (server to client), drops
     100 bytes of stream 2 (client to server), swallows the rest of stream 3's client bytes,
     resets stream 4, holds stream 5's server bytes for a while, and then refuses connections
     for a moment. The client (control through --control FILE) must report exactly those
     failures, in the window they happened in, at the offsets the relay recorded, and nothing
     in the windows before and after.
Exit status 0 = pass. Runtime about 15 s.
"""
import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # Tools/ is copied into the test bundle; no __pycache__ there.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import upgradeload  # noqa: E402

TOOL = os.path.join(HERE, "upgradeload.py")
REQUEST_TIMEOUT = 1.5
HOLD_SECONDS = 2.5
REFUSE_SECONDS = 0.6
STREAM_RATE = 20000
VERBOSE = False


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- processes


async def start_server():
    process = await asyncio.create_subprocess_exec(
        sys.executable, TOOL, "server", "--listen", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    port = None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        if not line:
            raise Failure("server exited before ready")
        if line.startswith("listening "):
            port = int(line.rsplit(":", 1)[1])
        if line.strip() == "ready":
            return process, port


class ClientProcess:
    """The client as a child process; its stderr lines are collected to see acknowledgements."""

    def __init__(self, process, control):
        self.process = process
        self.control = control
        self.lines = []
        self.changed = asyncio.Event()
        self.stdout = asyncio.create_task(process.stdout.read())
        self.reader = asyncio.create_task(self.read_stderr())

    @classmethod
    async def start(cls, port, control=None, extra=()):
        arguments = [
            sys.executable, TOOL, "client", "--connect", f"127.0.0.1:{port}", "--keepalive", "3",
            "--oneshot", "2", "--streams", "8", "--stream-rate", str(STREAM_RATE),
            "--request-timeout", str(REQUEST_TIMEOUT), "--request-interval", "0.004", *extra,
        ]
        if control:
            arguments += ["--control", control]
        process = await asyncio.create_subprocess_exec(
            *arguments, stdin=asyncio.subprocess.PIPE if not control else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        client = cls(process, control)
        await client.wait_line("running")
        return client

    async def read_stderr(self):
        while True:
            line = await self.process.stderr.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if VERBOSE:
                log(f"client: {text}")
            self.lines.append(text)
            self.changed.set()

    async def wait_line(self, wanted, timeout=10):
        deadline = time.monotonic() + timeout
        while wanted not in self.lines:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.reader.done():
                raise Failure(f"client never printed {wanted!r}; stderr: {self.lines}")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def send(self, line):
        if self.control:
            with open(self.control, "a") as handle:
                handle.write(line + "\n")
        else:
            self.process.stdin.write((line + "\n").encode())
            await self.process.stdin.drain()

    async def mark(self, label):
        await self.send(f"mark {label}")
        await self.wait_line(f"mark-ack {label}")

    async def stop(self):
        await self.send("stop")
        output = await asyncio.wait_for(self.stdout, 60)
        status = await self.process.wait()
        await self.reader
        check(status == 0, f"client exited {status}; stderr: {self.lines}")
        try:
            report = json.loads(output)
        except ValueError as error:
            raise Failure(f"client stdout is not one JSON object ({error}): {output[:500]!r}")
        check(isinstance(report, dict), "client stdout is not a JSON object")
        return report


# ---------------------------------------------------------------- relay with faults


def reset(writer):
    """Closes with RST rather than FIN: linger on, zero seconds."""
    try:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class Link:
    """One relayed connection: what it is and how far each direction has gone."""

    def __init__(self, client, server):
        self.writers = {"c2s": server, "s2c": client}
        self.client = client
        self.server = server
        self.kind = None
        self.stream = None
        self.header = b""
        self.offsets = {"c2s": 0, "s2c": 0}
        self.faulted = False
        self.dead = False
        # "stall": forward nothing more; "truncated": the client got half an answer and a FIN.
        self.mode = None
        self.drop = 0
        self.blackhole = False

    def reset(self):
        self.dead = True
        reset(self.client)
        reset(self.server)


class Relay:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.port = 0
        self.sock = None
        self.accepter = None
        self.tasks = set()
        self.faults = []
        self.applied = {}
        self.changed = asyncio.Event()

    async def start(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.accepter = asyncio.create_task(self.accept_loop())

    async def accept_loop(self):
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.sock)
            self.spawn(conn)

    def spawn(self, conn):
        task = asyncio.create_task(self.relay(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def refuse(self, seconds):
        """Closes the listener for `seconds`: connects in between get ECONNREFUSED."""
        self.accepter.cancel()
        await asyncio.gather(self.accepter, return_exceptions=True)
        # Take what the kernel already queued, so closing resets nobody who got connected.
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                break
            self.spawn(conn)
        self.sock.close()
        await asyncio.sleep(seconds)
        await self.start()

    def arm(self, faults):
        self.faults.extend(faults)

    def record(self, fault, **details):
        self.applied[fault["name"]] = dict(details, time=time.time())
        self.faults.remove(fault)
        if VERBOSE:
            log(f"relay applied {fault['name']}: {details}")
        self.changed.set()

    async def wait_applied(self, names, timeout=10):
        deadline = time.monotonic() + timeout
        while not all(name in self.applied for name in names):
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = [name for name in names if name not in self.applied]
                raise Failure(f"relay never applied {missing}")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def relay(self, conn):
        conn.setblocking(False)
        client_reader, client_writer = await asyncio.open_connection(sock=conn)
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            reset(client_writer)
            return
        link = Link(client_writer, server_writer)
        await asyncio.gather(self.pump(link, "c2s", client_reader), self.pump(link, "s2c", server_reader),
                             return_exceptions=True)
        for writer in (client_writer, server_writer):
            if link.dead:
                writer.transport.abort()
            else:
                writer.close()

    async def pump(self, link, direction, reader):
        writer = link.writers[direction]
        try:
            while not link.dead:
                data = await reader.read(65536)
                if not data:
                    if link.mode == "stall":
                        link.reset()
                    elif link.mode is None and not link.dead:
                        writer.write_eof()
                    return
                if direction == "c2s" and link.kind is None:
                    link.header += data
                    if b"\n" not in link.header:
                        continue
                    line, _, data = link.header.partition(b"\n")
                    words = line.split()
                    link.kind = words[0].decode() if words else "?"
                    if link.kind == "STREAM":
                        link.stream = int(words[1])
                    writer.write(line + b"\n")
                    if not data:
                        continue
                data = await self.apply(link, direction, data)
                if data is None or link.dead or link.mode is not None:
                    continue
                link.offsets[direction] += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            link.dead = True
            reset(link.client)
            reset(link.server)

    async def apply(self, link, direction, data):
        """The bytes to forward (None: nothing) after whichever armed fault matches."""
        if direction == "c2s" and link.blackhole:
            return None
        if direction == "c2s" and link.drop:
            dropped = min(link.drop, len(data))
            link.drop -= dropped
            data = data[dropped:]
            if not data:
                return None
        for fault in list(self.faults):
            if fault["kind"] != link.kind or fault["direction"] != direction:
                continue
            if "stream" in fault and fault["stream"] != link.stream:
                continue
            if link.faulted:
                continue
            action = fault["action"]
            offset = link.offsets[direction]
            link.faulted = True
            if action == "corrupt":
                self.record(fault, offset=offset)
                return bytes([data[0] ^ 0xFF]) + data[1:]
            if action == "reset":
                self.record(fault, offset=offset)
                link.reset()
                return None
            if action == "stall":
                self.record(fault, offset=offset)
                link.mode = "stall"
                return None
            if action == "truncate":
                half = data[:len(data) // 2]
                self.record(fault, offset=offset, forwarded=len(half))
                link.mode = "truncated"
                link.client.write(half)
                link.client.write_eof()
                link.server.close()
                return None
            if action == "drop":
                self.record(fault, offset=offset)
                link.drop = fault["count"]
                return await self.apply(link, direction, data)
            if action == "blackhole":
                self.record(fault, offset=offset)
                link.blackhole = True
                return None
            if action == "hold":
                self.record(fault, offset=offset)
                await asyncio.sleep(fault["seconds"])
                return data
        return data


# ---------------------------------------------------------------- checks

FAILURE_COUNTERS = upgradeload.FAILURES


def window(report, label):
    matches = [w for w in report["windows"] if w["label"] == label]
    check(len(matches) == 1, f"no single window {label!r}: {[w['label'] for w in report['windows']]}")
    return matches[0]


def expect_counts(report, label, expected, at_least=(), traffic=True):
    found = window(report, label)
    check(found["requests_ok"] > 0 or not traffic, f"window {label}: no successful request")
    for name in FAILURE_COUNTERS:
        want = expected.get(name, 0)
        if name in at_least:
            check(found[name] >= want, f"window {label}: {name} = {found[name]}, want >= {want}; {found}")
        else:
            check(found[name] == want, f"window {label}: {name} = {found[name]}, want {want}; {found}")
    summary = ", ".join(f"{name}={found[name]}" for name in FAILURE_COUNTERS if found[name])
    log(f"  window {label}: {found['requests_ok']} ok, p99 {found['latency_ms']['p99']} ms"
        f"{'; ' + summary if summary else ', no failures'}")


def expect_clean_stream(stream):
    check(stream["survived"] and stream["ok"], f"stream {stream['id']} not clean: {stream}")
    verdict = stream["server_verdict"]
    check(verdict["verdict"] == "ok", f"stream {stream['id']}: server verdict {verdict}")
    check(verdict["received"] == stream["bytes_sent"] > 0, f"stream {stream['id']}: c2s counts differ: {stream}")
    check(verdict["sent"] == stream["bytes_received"] == stream["bytes_verified"] > 0,
          f"stream {stream['id']}: s2c counts differ: {stream}")


async def clean_run(server_port):
    log("clean run: client -> server directly, control on stdin")
    client = await ClientProcess.start(server_port)
    await asyncio.sleep(1.0)
    await client.mark("second")
    await asyncio.sleep(1.0)
    report = await client.stop()
    for label in ("start", "second"):
        expect_counts(report, label, {})
    for stream in report["streams"]:
        expect_clean_stream(stream)
    totals = report["totals"]
    check(totals["failures"] == 0 and totals["streams_ok"] == 8, f"clean run totals: {totals}")
    check(not report["other_error_messages"], f"other errors: {report['other_error_messages']}")
    log(f"  8 streams ok, {totals['stream_bytes_sent']} bytes sent, {totals['stream_bytes_received']} received")


async def fault_run(server_port, directory):
    log("fault run: client -> relay -> server, control through a file")
    relay = Relay(server_port)
    await relay.start()
    control = os.path.join(directory, "control")
    client = await ClientProcess.start(relay.port, control=control)
    await client.mark("clean-before")
    await asyncio.sleep(1.5)

    await client.mark("faults")
    faults = [
        {"name": "rr-corrupt", "kind": "RR", "direction": "s2c", "action": "corrupt"},
        {"name": "rr-reset", "kind": "RR", "direction": "c2s", "action": "reset"},
        {"name": "rr-stall", "kind": "RR", "direction": "c2s", "action": "stall"},
        {"name": "one-truncate", "kind": "ONE", "direction": "s2c", "action": "truncate"},
        {"name": "stream1-corrupt", "kind": "STREAM", "stream": 1, "direction": "s2c", "action": "corrupt"},
        {"name": "stream2-drop", "kind": "STREAM", "stream": 2, "direction": "c2s", "action": "drop", "count": 100},
        {"name": "stream3-blackhole", "kind": "STREAM", "stream": 3, "direction": "c2s", "action": "blackhole"},
        {"name": "stream4-reset", "kind": "STREAM", "stream": 4, "direction": "s2c", "action": "reset"},
        {"name": "stream5-hold", "kind": "STREAM", "stream": 5, "direction": "s2c", "action": "hold",
         "seconds": HOLD_SECONDS},
    ]
    relay.arm(faults)
    await relay.wait_applied([fault["name"] for fault in faults])
    # The stalled request times out after REQUEST_TIMEOUT; the held stream resumes after HOLD_SECONDS.
    await asyncio.sleep(max(REQUEST_TIMEOUT, HOLD_SECONDS) + 0.7)

    await client.mark("refuse")
    await relay.refuse(REFUSE_SECONDS)
    await asyncio.sleep(0.5)

    await client.mark("clean-after")
    await asyncio.sleep(1.5)
    report = await client.stop()

    # "start" lasts only until the first mark, too short to require traffic.
    expect_counts(report, "start", {}, traffic=False)
    for label in ("clean-before", "clean-after"):
        expect_counts(report, label, {})
    expect_counts(report, "faults", {
        "wrong_content": 1, "resets": 1, "timeouts": 1, "truncated": 1,
        "stream_corruptions": 2, "streams_lost": 1, "stream_stalls": 1,
    })
    expect_counts(report, "refuse", {"connect_refused": 1}, at_least=("connect_refused",))

    streams = {stream["id"]: stream for stream in report["streams"]}
    for stream_id in (0, 5, 6, 7):
        expect_clean_stream(streams[stream_id])

    corrupt = relay.applied["stream1-corrupt"]["offset"]
    one = streams[1]
    check(one["survived"] and one["problems"] == [{"direction": "s2c", "offset": corrupt, "kind": "corrupt"}],
          f"stream 1: want s2c corrupt at {corrupt}: {one}")
    check(one["bytes_verified"] == corrupt and one["server_verdict"]["verdict"] == "ok", f"stream 1: {one}")

    # Losing 100 bytes at X shows as the first position at or after X where the byte 100 further
    # on differs from the expected one.
    dropped_at = relay.applied["stream2-drop"]["offset"]
    expected_bytes = upgradeload.stream_bytes("c2s", 2, dropped_at, 1100)
    first = dropped_at + next(i for i in range(1000) if expected_bytes[i] != expected_bytes[i + 100])
    two = streams[2]
    check(two["survived"] and two["problems"] == [{"direction": "c2s", "offset": first, "kind": "corrupt"}],
          f"stream 2: want c2s corrupt at {first}: {two}")
    check(two["server_verdict"]["verdict"] == f"corrupt at offset {first}", f"stream 2: {two}")
    check(two["server_verdict"]["received"] == two["bytes_sent"] - 100, f"stream 2: {two}")

    swallowed_at = relay.applied["stream3-blackhole"]["offset"]
    three = streams[3]
    check(three["survived"] and three["problems"] == [
        {"direction": "c2s", "offset": swallowed_at, "kind": "missing", "expected": three["bytes_sent"]}],
        f"stream 3: want c2s missing from {swallowed_at}: {three}")
    check(three["server_verdict"] == dict(three["server_verdict"], received=swallowed_at, verdict="ok"),
          f"stream 3: {three}")

    four = streams[4]
    check(not four["survived"] and not four["ok"] and four["lost_reason"].startswith("resets"),
          f"stream 4: want lost by reset: {four}")

    totals = report["totals"]
    check(totals["streams_survived"] == 7 and totals["streams_ok"] == 4, f"totals: {totals}")
    check(totals["stream_problems"] == 3, f"totals: {totals}")
    check(not report["other_error_messages"], f"other errors: {report['other_error_messages']}")
    log(f"  streams: 1 s2c corrupt at {corrupt}, 2 c2s corrupt at {first} (100 bytes dropped at {dropped_at}), "
        f"3 c2s missing from {swallowed_at}, 4 lost ({four['lost_reason']}), 5 stalled then intact")


async def main_async(args):
    global VERBOSE
    VERBOSE = args.verbose
    started = time.monotonic()
    server, port = await start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="upgradeload-selftest-") as directory:
            await clean_run(port)
            await fault_run(port, directory)
    finally:
        server.terminate()
        await server.wait()
    log(f"PASS in {time.monotonic() - started:.1f}s")


def main():
    parser = argparse.ArgumentParser(description="self-test for upgradeload.py")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except Failure as failure:
        log(f"FAIL: {failure}")
        sys.exit(1)


if __name__ == "__main__":
    main()
