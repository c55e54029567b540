#!/usr/bin/env python3
"""Load generator and server for the hot-upgrade end-to-end test: it counts every failure an
application could observe while the proxy in between is replaced.

    upgradeload.py server --listen HOST:PORT [--listen HOST:PORT ...]
    upgradeload.py client --connect HOST:PORT --keepalive K --oneshot N --streams S
                          --stream-rate BYTES_PER_S [--request-size B] [--control FILE]
                          [--report FILE] [--request-timeout SECONDS] [--request-interval SECONDS]
                          [--stop-timeout SECONDS] [--duration SECONDS]

Server protocol: the client's first line names the kind of connection.
  RR\\n            keep-alive: then any number of requests "<id> <size>\\n", each answered on the
                  same connection by exactly <size> bytes of response(id, size), a slice of a
                  fixed pseudo-random pattern starting at an offset derived from <id>, so a
                  response meant for another request (or shifted by lost bytes) does not match.
  ONE\\n           then one request "<id> <size>\\n"; the server answers and closes.
  STREAM <id> <rate>\\n
                  long-lived, both directions at once. The client sends stream_bytes("c2s", id)
                  at <rate> bytes/s; the server verifies every byte in order and meanwhile sends
                  stream_bytes("s2c", id) at the same rate, which the client verifies. The client
                  ends by half-closing; the server then stops its stream, sends VERDICT_MARK and
                  one JSON line {"received", "sent", "verdict": "ok" | "corrupt at offset N",
                  "corrupt_offset", "corrupt_time"} and closes. The mark cannot occur by chance in
                  the pseudo-random stream, so the client finds where the stream ends without
                  framing. The stream bytes are blocks of SHAKE-256(seed || block number).
The server prints "listening HOST:PORT" per listener, then "ready".

Client: K keep-alive connections doing back-to-back requests, N workers opening a new connection
per request, S streams, all at once until "stop". Control lines come from stdin (EOF = stop) or,
with --control FILE, from lines appended to FILE (the e2e harness cannot write a child's stdin):
  mark <label>    closes the current window and opens a new one; acknowledged on stderr by
                  "mark-ack <label>" once the new window is open
  stop            streams half-close and collect the server's verdicts; the JSON report is
                  printed on stdout (and written to --report FILE), exit status 0.
The client prints "running" on stderr once every stream has connected (or failed to).

Every event is counted in the window open when it is observed (a request when it completes or
fails, a stream corruption when detected: c2s corruption at the time the server saw it, by the
clock namespaces share).
Window counters: requests_ok (rr_ok, one_ok), connect_refused (ECONNREFUSED), resets
(ECONNRESET, EPIPE, ECONNABORTED), timeouts (no complete answer within --request-timeout,
connect included), truncated (EOF before the whole response), wrong_content (bytes differ, or
bytes after a ONE response), failed (any other OSError), other_errors (anything unexpected, with
its message), stream_corruptions, streams_lost (a stream that closed or reset before stop),
stream_stalls (no byte from the server for longer than --request-timeout), latency_ms of
successful requests. Per stream: bytes sent, received and verified, problems (direction c2s or
s2c, offset, kind corrupt or missing), whether it survived to the end, the server's verdict.
Tail bytes that never arrived are only known at stop, so they appear in the stream report and
the totals, not in a window.
"""
import argparse
import array
import asyncio
import errno
import hashlib
import json
import os
import signal
import stat
import sys
import time

BLOCK = 4096
VERDICT_MARK = b"\n#upgradeload-verdict-5f0c1e9a# "
RESPONSE_BASE_SIZE = 1 << 20
MAX_REQUEST_SIZE = RESPONSE_BASE_SIZE
READ_SIZE = 65536
SEND_INTERVAL = 0.05
FAILURE_BACKOFF = 0.05
MAX_MESSAGES = 20


# ---------------------------------------------------------------- deterministic content


def _response_base():
    base = hashlib.shake_256(b"upgradeload response pattern").digest(RESPONSE_BASE_SIZE)
    # Twice, so that any slice of up to RESPONSE_BASE_SIZE bytes is one contiguous copy.
    return base + base


RESPONSE_BASE = _response_base()


def response(request_id, size):
    """The exact bytes the server answers to request <id> of <size> bytes."""
    offset = (request_id * 2654435761) % RESPONSE_BASE_SIZE
    return RESPONSE_BASE[offset:offset + size]


class StreamBytes:
    """The infinite byte stream of one direction of one stream, read in order."""

    def __init__(self, direction, stream_id):
        self.seed = f"upgradeload {direction} {stream_id} ".encode()
        self.offset = 0
        self.block_number = 0
        self.block = self._make(0)
        self.position = 0

    def _make(self, number):
        return hashlib.shake_256(self.seed + number.to_bytes(8, "big")).digest(BLOCK)

    def take(self, count):
        parts = []
        while count > 0:
            piece = self.block[self.position:self.position + count]
            parts.append(piece)
            self.position += len(piece)
            self.offset += len(piece)
            count -= len(piece)
            if self.position == BLOCK:
                self.block_number += 1
                self.block = self._make(self.block_number)
                self.position = 0
        return b"".join(parts)


def stream_bytes(direction, stream_id, start, count):
    """Bytes [start, start+count) of a stream (for tests; the tools read streams in order)."""
    source = StreamBytes(direction, stream_id)
    source.take(start)
    return source.take(count)


class Verifier:
    """Compares received bytes with the expected stream; remembers the first mismatch."""

    def __init__(self, direction, stream_id):
        self.expected = StreamBytes(direction, stream_id)
        self.received = 0
        self.verified = 0
        self.corrupt_offset = None
        self.corrupt_time = None

    def feed(self, data):
        self.received += len(data)
        if self.corrupt_offset is not None or not data:
            return
        wanted = self.expected.take(len(data))
        if data == wanted:
            self.verified += len(data)
            return
        index = next(i for i in range(len(data)) if data[i] != wanted[i])
        self.verified += index
        self.corrupt_offset = self.verified
        self.corrupt_time = time.time()


async def send_stream(writer, source, rate, on_sent=None):
    """Writes `source` at `rate` bytes/s until cancelled; a cancellation never splits a write."""
    start = time.monotonic()
    sent = 0
    while True:
        due = int(rate * (time.monotonic() - start)) - sent
        if due > 0:
            # After a long stall (backpressure during an upgrade), catch up by at most a second.
            due = min(due, max(rate, 1))
            writer.write(source.take(due))
            sent += due
            if on_sent:
                on_sent(due)
            await writer.drain()
        await asyncio.sleep(SEND_INTERVAL)


def parse_endpoint(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def abort(writer):
    if writer is not None:
        try:
            writer.transport.abort()
        except Exception:
            pass


# ---------------------------------------------------------------- server


class Server:
    def __init__(self):
        self.problems = 0

    def note(self, message):
        # Stderr only, rate-limited: the client's report is what the tests read.
        self.problems += 1
        if self.problems <= 100:
            print(f"server: {message}", file=sys.stderr, flush=True)

    async def handle(self, reader, writer):
        try:
            first = await reader.readline()
            words = first.decode(errors="replace").split()
            if not words:
                return
            if words[0] == "RR":
                while await self.answer(reader, writer):
                    pass
            elif words[0] == "ONE":
                await self.answer(reader, writer)
            elif words[0] == "STREAM" and len(words) == 3:
                await self.stream(reader, writer, int(words[1]), int(words[2]))
            else:
                writer.write(b"ERR unknown kind\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as error:
            self.note(f"{type(error).__name__}: {error}")
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:
                pass

    async def answer(self, reader, writer):
        """One request; False when the client is done."""
        line = await reader.readline()
        if not line:
            return False
        words = line.split()
        if len(words) != 2 or not words[1].isdigit() or int(words[1]) > MAX_REQUEST_SIZE:
            writer.write(b"ERR bad request\n")
            return False
        writer.write(response(int(words[0]), int(words[1])))
        await writer.drain()
        return True

    async def stream(self, reader, writer, stream_id, rate):
        verifier = Verifier("c2s", stream_id)
        source = StreamBytes("s2c", stream_id)
        sender = asyncio.create_task(send_stream(writer, source, rate))
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                verifier.feed(data)
                if sender.done():
                    # The sending side failed (reset); reading on is pointless.
                    sender.result()
        finally:
            sender.cancel()
            try:
                await sender
            except asyncio.CancelledError:
                pass
        if verifier.corrupt_offset is None:
            verdict = "ok"
        else:
            verdict = f"corrupt at offset {verifier.corrupt_offset}"
        summary = {
            "received": verifier.received, "sent": source.offset, "verdict": verdict,
            "corrupt_offset": verifier.corrupt_offset, "corrupt_time": verifier.corrupt_time,
        }
        writer.write(VERDICT_MARK + json.dumps(summary).encode() + b"\n")
        await writer.drain()


async def serve(endpoints):
    server = Server()
    servers = []
    for host, port in endpoints:
        listener = await asyncio.start_server(server.handle, host, port, backlog=4096, reuse_address=True)
        servers.append(listener)
        for sock in listener.sockets:
            name = sock.getsockname()
            shown = f"[{name[0]}]" if ":" in name[0] else name[0]
            print(f"listening {shown}:{name[1]}", flush=True)
    print("ready", flush=True)
    await asyncio.gather(*(listener.serve_forever() for listener in servers))


# ---------------------------------------------------------------- client

COUNTERS = (
    "requests_ok", "rr_ok", "one_ok", "connect_refused", "resets", "timeouts", "truncated",
    "wrong_content", "failed", "other_errors", "stream_corruptions", "streams_lost", "stream_stalls",
)
FAILURES = tuple(name for name in COUNTERS if name not in ("requests_ok", "rr_ok", "one_ok"))


def percentiles(samples):
    if not samples:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(samples)

    def rank(fraction):
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)

    return {"count": len(ordered), "p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 3)}


class Window:
    def __init__(self, label):
        self.label = label
        self.start = time.time()
        self.end = None
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.latencies = array.array("d")
        self.messages = []

    def add(self, counter, message=None):
        self.counts[counter] += 1
        if message and len(self.messages) < MAX_MESSAGES and message not in self.messages:
            self.messages.append(message)

    def report(self):
        result = {"label": self.label, "start": self.start, "end": self.end}
        result.update(self.counts)
        result["latency_ms"] = percentiles(self.latencies)
        result["messages"] = self.messages
        return result


class StreamState:
    def __init__(self, stream_id):
        self.id = stream_id
        self.sent = 0
        self.verifier = Verifier("s2c", stream_id)
        self.connected = False
        self.lost_reason = None
        self.verdict = None
        self.problems = []
        self.errors = []
        self.last_received = time.monotonic()
        self.stalled = False
        self.finished = False

    def report(self):
        survived = self.connected and self.lost_reason is None
        return {
            "id": self.id, "bytes_sent": self.sent, "bytes_received": self.verifier.received,
            "bytes_verified": self.verifier.verified, "survived": survived,
            "ok": survived and not self.problems and not self.errors, "lost_reason": self.lost_reason,
            "problems": self.problems, "server_verdict": self.verdict, "errors": self.errors,
        }


def classify(error):
    """Which counter an exception belongs to; order matters (TimeoutError is an OSError)."""
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "timeouts"
    if isinstance(error, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "resets"
    if isinstance(error, asyncio.IncompleteReadError):
        return "truncated"
    if isinstance(error, OSError):
        if error.errno == errno.ECONNREFUSED:
            return "connect_refused"
        if error.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return "resets"
        return "failed"
    return "other_errors"


def describe(error):
    if isinstance(error, asyncio.IncompleteReadError):
        return f"EOF after {len(error.partial)} of {error.expected} bytes"
    text = str(error) or "no message"
    return f"{type(error).__name__}: {text}"


class WrongContent(Exception):
    pass


class StreamEnded(Exception):
    """The server's stream ended (clean EOF) where it should not have."""


class Client:
    def __init__(self, args):
        self.args = args
        self.host, self.port = args.connect
        self.windows = [Window("start")]
        self.stopping = asyncio.Event()
        self.next_id = 0
        self.streams = [StreamState(i) for i in range(args.streams)]
        self.other_messages = []
        self.started = time.time()

    @property
    def window(self):
        return self.windows[-1]

    def window_at(self, moment):
        for window in reversed(self.windows):
            if moment >= window.start:
                return window
        return self.windows[0]

    def count(self, counter, message=None, window=None):
        (window or self.window).add(counter, message)

    def count_error(self, error, window=None):
        counter = classify(error)
        message = describe(error)
        self.count(counter, message, window)
        if counter == "other_errors" and len(self.other_messages) < MAX_MESSAGES:
            self.other_messages.append(message)
        return counter

    def mark(self, label):
        now = time.time()
        self.window.end = now
        self.windows.append(Window(label))
        self.windows[-1].start = now
        print(f"mark-ack {label}", file=sys.stderr, flush=True)

    async def connect(self):
        return await asyncio.open_connection(self.host, self.port)

    def request_id(self):
        self.next_id += 1
        return self.next_id

    async def pace(self, started):
        interval = self.args.request_interval
        if interval > 0:
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    # keep-alive: one connection, requests back to back; any failure drops the connection.
    async def keepalive_worker(self):
        reader = writer = None
        size = self.args.request_size
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                async def attempt():
                    nonlocal reader, writer
                    request_id = self.request_id()
                    line = f"{request_id} {size}\n".encode()
                    if writer is None:
                        reader, writer = await self.connect()
                        line = b"RR\n" + line
                    writer.write(line)
                    await writer.drain()
                    data = await reader.readexactly(size)
                    if data != response(request_id, size):
                        raise WrongContent(f"request {request_id}: response differs")
                await asyncio.wait_for(attempt(), self.args.request_timeout)
                self.window.latencies.append(time.monotonic() - started)
                self.count("rr_ok")
                self.count("requests_ok")
            except Exception as error:
                abort(writer)
                reader = writer = None
                if isinstance(error, WrongContent):
                    self.count("wrong_content", str(error))
                else:
                    self.count_error(error)
                await asyncio.sleep(FAILURE_BACKOFF)
                continue
            await self.pace(started)
        if writer is not None:
            writer.close()

    # one connection per request: the server answers and closes; nothing may follow the answer.
    async def oneshot_worker(self):
        size = self.args.request_size
        while not self.stopping.is_set():
            started = time.monotonic()
            writer = None
            try:
                async def attempt():
                    nonlocal writer
                    request_id = self.request_id()
                    reader, writer = await self.connect()
                    writer.write(f"ONE\n{request_id} {size}\n".encode())
                    await writer.drain()
                    data = await reader.readexactly(size)
                    if data != response(request_id, size):
                        raise WrongContent(f"request {request_id}: response differs")
                    extra = await reader.read(1)
                    if extra:
                        raise WrongContent(f"request {request_id}: bytes after the response")
                await asyncio.wait_for(attempt(), self.args.request_timeout)
                self.window.latencies.append(time.monotonic() - started)
                self.count("one_ok")
                self.count("requests_ok")
                writer.close()
            except Exception as error:
                abort(writer)
                if isinstance(error, WrongContent):
                    self.count("wrong_content", str(error))
                else:
                    self.count_error(error)
                await asyncio.sleep(FAILURE_BACKOFF)
                continue
            await self.pace(started)

    def lose(self, state, reason):
        if state.lost_reason is None:
            state.lost_reason = reason
            self.count("streams_lost", f"stream {state.id}: {reason}")

    async def stream_worker(self, state, connected):
        writer = None
        try:
            try:
                reader, writer = await asyncio.wait_for(self.connect(), self.args.request_timeout)
            except Exception as error:
                self.count_error(error)
                state.lost_reason = f"connect: {describe(error)}"
                self.count("streams_lost", f"stream {state.id}: {state.lost_reason}")
                return
            finally:
                connected()
            state.connected = True
            state.last_received = time.monotonic()
            writer.write(f"STREAM {state.id} {self.args.stream_rate}\n".encode())

            def on_sent(count):
                state.sent += count

            sender = asyncio.create_task(
                send_stream(writer, StreamBytes("c2s", state.id), self.args.stream_rate, on_sent))
            receiver = asyncio.create_task(self.receive_stream(state, reader))
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({sender, receiver, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.done():
                # The stream ended before stop: whatever ended first says why.
                stop.cancel()
                sender.cancel()
                if not receiver.done():
                    receiver.cancel()
                failed = receiver if receiver.done() and not receiver.cancelled() else sender
                try:
                    await failed
                    reason = "the server ended the stream before stop"
                except asyncio.CancelledError:
                    reason = "the server ended the stream before stop"
                except StreamEnded as error:
                    reason = f"closed: {error}"
                except Exception as error:
                    counter = classify(error)
                    reason = f"{counter}: {describe(error)}"
                    if counter == "other_errors":
                        self.count("other_errors", f"stream {state.id}: {describe(error)}")
                self.lose(state, reason)
                await asyncio.gather(sender, receiver, return_exceptions=True)
                return
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            try:
                await asyncio.wait_for(self.half_close(writer), self.args.stop_timeout)
                await asyncio.wait_for(receiver, self.args.stop_timeout)
            except Exception as error:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
                self.lose(state, f"at stop: {describe(error)}")
                return
            self.judge(state)
        except Exception as error:
            state.errors.append(describe(error))
            self.count("other_errors", f"stream {state.id}: {describe(error)}")
            if len(self.other_messages) < MAX_MESSAGES:
                self.other_messages.append(describe(error))
        finally:
            state.finished = True
            abort(writer)

    @staticmethod
    async def half_close(writer):
        await writer.drain()
        writer.write_eof()

    async def receive_stream(self, state, reader):
        """Verifies the server's stream up to its verdict; raises when the stream breaks."""
        pending = b""
        keep = len(VERDICT_MARK) - 1
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                if pending:
                    state.verifier.feed(pending)
                    self.note_s2c_corruption(state)
                raise StreamEnded("EOF before the server's verdict")
            state.last_received = time.monotonic()
            state.stalled = False
            pending += data
            index = pending.find(VERDICT_MARK)
            if index < 0:
                if len(pending) > keep:
                    state.verifier.feed(pending[:-keep])
                    pending = pending[-keep:]
                    self.note_s2c_corruption(state)
                continue
            state.verifier.feed(pending[:index])
            self.note_s2c_corruption(state)
            rest = pending[index + len(VERDICT_MARK):]
            while b"\n" not in rest:
                more = await reader.read(READ_SIZE)
                if not more:
                    raise StreamEnded("EOF inside the server's verdict")
                rest += more
            line, _, extra = rest.partition(b"\n")
            state.verdict = json.loads(line)
            while True:
                if extra:
                    state.errors.append(f"{len(extra)} bytes after the server's verdict")
                more = await reader.read(READ_SIZE)
                if not more:
                    return
                extra = more

    def note_s2c_corruption(self, state):
        verifier = state.verifier
        if verifier.corrupt_offset is not None and not any(p["direction"] == "s2c" for p in state.problems):
            state.problems.append({"direction": "s2c", "offset": verifier.corrupt_offset, "kind": "corrupt"})
            self.count("stream_corruptions", f"stream {state.id}: s2c corrupt at offset {verifier.corrupt_offset}")

    def judge(self, state):
        """After a complete stream: compare counts both ways and take in the server's verdict."""
        verdict = state.verdict
        offset = verdict.get("corrupt_offset")
        if offset is not None:
            state.problems.append({"direction": "c2s", "offset": offset, "kind": "corrupt"})
            moment = verdict.get("corrupt_time") or time.time()
            self.count("stream_corruptions", f"stream {state.id}: c2s corrupt at offset {offset}",
                       self.window_at(moment))
        elif verdict.get("received") != state.sent:
            state.problems.append({"direction": "c2s", "offset": verdict.get("received"), "kind": "missing",
                                   "expected": state.sent})
        verifier = state.verifier
        if verifier.corrupt_offset is None and verifier.received != verdict.get("sent"):
            state.problems.append({"direction": "s2c", "offset": verifier.received, "kind": "missing",
                                   "expected": verdict.get("sent")})

    async def watch_stalls(self):
        while not self.stopping.is_set():
            now = time.monotonic()
            for state in self.streams:
                if (state.connected and not state.finished and state.lost_reason is None and not state.stalled
                        and now - state.last_received > self.args.request_timeout):
                    state.stalled = True
                    self.count("stream_stalls", f"stream {state.id}: nothing received for "
                                                f"{now - state.last_received:.1f}s")
            await asyncio.sleep(0.1)

    async def control(self):
        """Reads control lines until stop (stdin EOF also stops)."""
        if self.args.control:
            lines = self.follow(self.args.control)
        else:
            lines = self.stdin_lines()
        async for line in lines:
            words = line.strip().split(maxsplit=1)
            if not words:
                continue
            if words[0] == "mark" and len(words) == 2:
                self.mark(words[1])
            elif words[0] == "stop":
                return
            else:
                print(f"unknown control line {line.strip()!r}", file=sys.stderr, flush=True)

    async def stdin_lines(self):
        loop = asyncio.get_running_loop()
        mode = os.fstat(sys.stdin.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
            # A regular file or /dev/null cannot be polled (epoll refuses them) and never
            # blocks: read it at once; its end is the stop.
            for line in sys.stdin.read().splitlines():
                yield line
            return
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            yield line.decode(errors="replace")

    @staticmethod
    async def follow(path):
        """Lines appended to `path` (created if missing), polled: FIFOs would block the opener."""
        position = 0
        partial = b""
        while True:
            try:
                with open(path, "rb") as handle:
                    handle.seek(position)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            position += len(data)
            partial += data
            while b"\n" in partial:
                line, _, partial = partial.partition(b"\n")
                yield line.decode(errors="replace")
            await asyncio.sleep(0.02)

    async def run(self):
        loop = asyncio.get_running_loop()
        pending = len(self.streams)
        all_connected = loop.create_future()

        def connected():
            nonlocal pending
            pending -= 1
            if pending == 0 and not all_connected.done():
                all_connected.set_result(None)

        if pending == 0:
            all_connected.set_result(None)
        workers = [asyncio.create_task(self.keepalive_worker()) for _ in range(self.args.keepalive)]
        workers += [asyncio.create_task(self.oneshot_worker()) for _ in range(self.args.oneshot)]
        streams = [asyncio.create_task(self.stream_worker(state, connected)) for state in self.streams]
        watcher = asyncio.create_task(self.watch_stalls())
        await all_connected
        print("running", file=sys.stderr, flush=True)
        control = asyncio.create_task(self.control())
        waits = [control]
        if self.args.duration:
            waits.append(asyncio.create_task(asyncio.sleep(self.args.duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if control.done() and not control.cancelled() and control.exception() is not None:
            self.count("other_errors", f"control: {describe(control.exception())}")
            self.other_messages.append(f"control: {describe(control.exception())}")
        self.stopping.set()
        # Requests in flight finish (or time out) and count in the last window.
        await asyncio.wait(workers, timeout=self.args.request_timeout + 2)
        await asyncio.wait(streams, timeout=2 * self.args.stop_timeout + 2)
        watcher.cancel()
        for task in workers + streams:
            if not task.done():
                task.cancel()
                self.count("other_errors", "a worker did not finish after stop")
        await asyncio.gather(*workers, *streams, watcher, return_exceptions=True)
        for task in workers + streams:
            if task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                self.count("other_errors", describe(error))
                self.other_messages.append(describe(error))
        self.window.end = time.time()
        return self.report()

    def report(self):
        windows = [window.report() for window in self.windows]
        streams = [state.report() for state in self.streams]
        totals = {name: sum(window[name] for window in windows) for name in COUNTERS}
        all_latencies = array.array("d")
        for window in self.windows:
            all_latencies.extend(window.latencies)
        totals["latency_ms"] = percentiles(all_latencies)
        totals["streams"] = len(streams)
        totals["streams_survived"] = sum(1 for s in streams if s["survived"])
        totals["streams_ok"] = sum(1 for s in streams if s["ok"])
        totals["stream_problems"] = sum(len(s["problems"]) for s in streams)
        totals["stream_bytes_sent"] = sum(s["bytes_sent"] for s in streams)
        totals["stream_bytes_received"] = sum(s["bytes_received"] for s in streams)
        totals["failures"] = sum(totals[name] for name in FAILURES) + totals["stream_problems"] \
            + sum(1 for s in streams if not s["survived"] or s["errors"])
        args = self.args
        return {
            "version": 1,
            "config": {
                "connect": f"{self.host}:{self.port}", "keepalive": args.keepalive, "oneshot": args.oneshot,
                "streams": args.streams, "stream_rate": args.stream_rate, "request_size": args.request_size,
                "request_timeout": args.request_timeout,
            },
            "started": self.started, "ended": time.time(),
            "windows": windows, "streams": streams, "totals": totals,
            "other_error_messages": self.other_messages,
        }


async def run_client(args):
    client = Client(args)
    try:
        report = await client.run()
    except Exception as error:
        # Even a bug in the tool must leave a report saying so, never a silent nothing.
        client.count("other_errors", f"client: {describe(error)}")
        client.other_messages.append(f"client: {describe(error)}")
        client.window.end = time.time()
        report = client.report()
    text = json.dumps(report)
    if args.report:
        temporary = args.report + ".tmp"
        with open(temporary, "w") as handle:
            handle.write(text + "\n")
        os.replace(temporary, args.report)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main():
    # The test runner may hand us SIGTERM ignored or blocked; teardown relies on it ending us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server")
    server.add_argument("--listen", type=parse_endpoint, action="append", required=True)
    client = sub.add_parser("client")
    client.add_argument("--connect", type=parse_endpoint, required=True)
    client.add_argument("--keepalive", type=int, default=4)
    client.add_argument("--oneshot", type=int, default=4)
    client.add_argument("--streams", type=int, default=10)
    client.add_argument("--stream-rate", type=int, default=16384, help="bytes/s per stream and direction")
    client.add_argument("--request-size", type=int, default=256)
    client.add_argument("--request-timeout", type=float, default=5.0)
    client.add_argument("--request-interval", type=float, default=0.0,
                        help="minimum seconds between request starts per worker (0 = back to back)")
    client.add_argument("--stop-timeout", type=float, default=10.0,
                        help="seconds a stream may take to half-close and receive the verdict")
    client.add_argument("--control", help="file of control lines (appended by the test) instead of stdin")
    client.add_argument("--report", help="also write the JSON report to this file (atomically)")
    client.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    args = parser.parse_args()
    if args.mode == "server":
        asyncio.run(serve(args.listen))
    else:
        if not 0 < args.request_size <= MAX_REQUEST_SIZE:
            parser.error(f"--request-size must be 1..{MAX_REQUEST_SIZE}")
        if args.stream_rate <= 0:
            parser.error("--stream-rate must be positive")
        asyncio.run(run_client(args))


if __name__ == "__main__":
    main()
