#!/usr/bin/env python3
"""xDS update benchmark: Sluice against Envoy in the same run (see Scripts/bench --xds).

    bench_xds.py --sluice PATH --envoy PATH [--clusters 1000] [--endpoints 10000] [--rounds 3]
                 [--mode sotw|delta] [--json FILE] [--timing log|http] [--workdir DIR]

Runs as root. Everything happens inside a network namespace of its own (slx-<pid>, only `lo`),
deleted at the end, also on failure; only the processes this script started are ended, by PID.
Each run starts a fresh Tests/SluiceEndToEndTests/Tools/xds_server.py and a fresh proxy with
the same dynamic bootstrap (ADS, one worker: Envoy --concurrency 1, Sluice --workers 1), both
pinned to one CPU when there are two or more (the server and this script on another), then:

  baseline  CDS v1 = [base] (EDS), EDS v1 = [base], LDS v1 = [base: tcp_proxy 127.0.0.1:10000
            -> base]; waits for the three ACKs and /ready, then for VmRSS to settle.
  update    EDS v2 = base + N ClusterLoadAssignments is stored first (a SotW proxy gets only its
            unchanged `base` again and ACKs it), then CDS v2 = base + N EDS clusters svc-0..N-1
            is pushed; the proxy asks for the new EDS names and the server answers at once from
            what it stores. Endpoints: M spread evenly, 10.x.y.z:8080, never connected to.

A round is four runs: Envoy and Sluice with the serving check ("serving" runs, which poll the
admin API during the update), then Envoy and Sluice without any admin query from the baseline
until the update settled ("quiet" runs). ACK times, memory and CPU come from quiet runs: the
polls compete with the update for the proxy's CPU (Sluice produces its positive /clusters
answer, 7 MB at N=1000, while it finishes the update), and that answer stays in Sluice's heap
(~+7 MiB RSS).

Metrics (medians):
  CDS ack       the CDS v2 response sent -> the proxy's request echoing its nonce (ACK)  [quiet]
  EDS request   CDS v2 response sent -> the request that completes the new EDS names   [quiet]
  EDS response  CDS v2 response sent -> the first EDS response naming new clusters     [quiet]
  EDS ack       that EDS response sent -> ACK of the response completing the names    [quiet]
  serving       CDS v2 response sent -> the admin API shows all N clusters with all their
                endpoints (see ServingCheck: positive answer read; lower bound: the last
                negative query sent, or the EDS response sent)                        [serving]
  RSS           VmRSS after the baseline settled, after the update settled, growth; VmHWM [quiet]
  CPU           proxy utime+stime from just before the CDS push until the update settled [quiet]
Every run ends by checking /clusters: each svc cluster must list exactly its endpoints.

Time stamps: xds_server.py records none, so this script stamps each event when it sees it.
--timing log (default) tails the server's --log JSON-lines trace (line-buffered, written when a
request is received and just before a response is queued to its gRPC stream) every 2 ms;
--timing http polls GET /responses and GET /requests every 10 ms instead (one stamp per poll);
it is much coarser: those polls are answered by the same GIL-bound process that parses pushes
and serves the gRPC stream, so a response and its ACK often arrive in the same poll.
A stamp is late by at most one poll interval plus the server's own latency; both ends of every
interval are stamped the same way.
"""
import argparse
import ctypes
import hashlib
import http.client
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER = os.path.join(ROOT, "Tests", "SluiceEndToEndTests", "Tools", "xds_server.py")

PREFIX = "type.googleapis.com/"
CDS = PREFIX + "envoy.config.cluster.v3.Cluster"
EDS = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = PREFIX + "envoy.config.listener.v3.Listener"
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS"}
CLONE_NEWNET = 0x40000000
LISTEN_PORT = 10000
PROXIES = ("envoy", "sluice")


class Failure(Exception):
    """A run could not be measured (NACK, crash, timeout); the message says what was seen."""


def sh(*args, check=True):
    result = subprocess.run(args, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}")
    return result.stdout


def now():
    return time.monotonic()


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# Network namespace


class Namespace:
    """`ip netns add` + lo up. This process moves into it (setns, before any other thread
    starts; threads inherit it) so every admin and control-API connection stays inside, and
    children are started with `ip netns exec`."""

    def __init__(self, name):
        self.name = name
        self.created = False
        self.host_fd = None
        self.libc = ctypes.CDLL(None, use_errno=True)

    def create(self):
        sh("ip", "netns", "add", self.name)
        self.created = True
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    def enter(self):
        self.host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if self.libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
        finally:
            os.close(fd)

    def delete(self):
        if self.host_fd is not None:
            self.libc.setns(self.host_fd, CLONE_NEWNET)
            os.close(self.host_fd)
            self.host_fd = None
        if self.created:
            sh("ip", "netns", "del", self.name, check=False)
            self.created = False

    def prefix(self, cpu=None):
        taskset = ["taskset", "-c", str(cpu)] if cpu is not None else []
        return taskset + ["ip", "netns", "exec", self.name]  # both exec: the PID is the command's


# ---------------------------------------------------------------------------------------------
# HTTP (admin API and control API), keep-alive


class Http:
    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def call(self, method, path, body=None):
        """-> (status, bytes); reconnects once when a kept-alive connection was dropped."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                reply = self.conn.getresponse()
                return reply.status, reply.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise

    def json(self, method, path, body=None):
        status, data = self.call(method, path, body)
        if status != 200:
            raise Failure(f"{method} {path} -> {status} {data[:500].decode(errors='replace')}")
        return json.loads(data)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------------------------------
# Resources (proto3 JSON), built once for all runs


def socket_address(address, port):
    return {"socket_address": {"address": address, "port_value": port}}


def cluster(name):
    return {"@type": CDS, "name": name, "type": "EDS", "connect_timeout": "1s",
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}


def assignment(name, addresses):
    return {"@type": EDS, "cluster_name": name, "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": socket_address(address, port)}} for address, port in addresses]}]}


def listener(name, cluster_name):
    tcp_proxy = {"@type": PREFIX + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                 "stat_prefix": name, "cluster": cluster_name}
    return {"@type": LDS, "name": name, "address": socket_address("127.0.0.1", LISTEN_PORT),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                            "typed_config": tcp_proxy}]}]}


def endpoint_address(index):
    value = index + 1
    return f"10.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def push_body(kind, version, resources):
    return json.dumps({"type": kind, "version": version, "resources": resources}).encode()


class Workload:
    """The baseline and update pushes as ready-to-send request bodies, and what they imply."""

    def __init__(self, clusters, endpoints):
        self.clusters = clusters
        self.endpoints = endpoints
        self.names = [f"svc-{i}" for i in range(clusters)]
        self.expected = {}  # cluster i gets endpoints [i*M/N, (i+1)*M/N)
        assignments = []
        for i, name in enumerate(self.names):
            lo, hi = i * endpoints // clusters, (i + 1) * endpoints // clusters
            self.expected[name] = hi - lo
            assignments.append(assignment(name, [(endpoint_address(k), 8080) for k in range(lo, hi)]))
        base = assignment("base", [("127.0.0.1", 9)])
        self.baseline = [push_body("cds", "v1", [cluster("base")]),
                         push_body("eds", "v1", [base]),
                         push_body("lds", "v1", [listener("base", "base")])]
        all_clusters = [cluster("base")] + [cluster(n) for n in self.names]
        self.update_eds = push_body("eds", "v2", [base] + assignments)
        self.update_cds = push_body("cds", "v2", all_clusters)
        self.sizes = self._sizes([base] + assignments, all_clusters)

    @staticmethod
    def _sizes(assignments, clusters):
        """Serialized bytes of the resources of the two update responses."""
        try:
            from google.protobuf import json_format
            from envoy.config.cluster.v3 import cluster_pb2
            from envoy.config.endpoint.v3 import endpoint_pb2
        except ImportError:
            return {}

        def size(objs, cls):
            total = 0
            for obj in objs:
                msg = cls()
                json_format.ParseDict({k: v for k, v in obj.items() if k != "@type"}, msg)
                total += msg.ByteSize()
            return total
        return {"cds_bytes": size(clusters, cluster_pb2.Cluster),
                "eds_bytes": size(assignments, endpoint_pb2.ClusterLoadAssignment)}


def bootstrap(mode, grpc_port, admin_port):
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    h2 = {"@type": PREFIX + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
          "explicit_http_config": {"http2_protocol_options": {}}}
    return {
        "node": {"id": "bench-xds", "cluster": "bench"},
        "admin": {"address": socket_address("127.0.0.1", admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC" if mode == "sotw" else "DELTA_GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]},
            "lds_config": ads_source,
            "cds_config": ads_source,
        },
        "static_resources": {"clusters": [{
            "name": "xds", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
            "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": socket_address("127.0.0.1", grpc_port)}}]}]},
        }]},
    }


# ---------------------------------------------------------------------------------------------
# Timeline: the server's requests and responses, stamped when this script saw them


class Timeline(threading.Thread):
    def __init__(self, timing, log_path, control_port):
        super().__init__(daemon=True)
        self.timing = timing
        self.log_path = log_path
        self.control_port = control_port
        self.records = []  # the server's records plus "kind" and "t" (monotonic seconds)
        self.cond = threading.Condition()
        self.stopping = False
        self.error = None
        self.interval = 0.002 if timing == "log" else 0.010

    def run(self):
        try:
            self._tail_log() if self.timing == "log" else self._poll_http()
        except Exception as error:  # surfaced by wait()
            self.error = error
            with self.cond:
                self.cond.notify_all()

    def _add(self, items):
        if items:
            with self.cond:
                self.records.extend(items)
                self.cond.notify_all()

    def _tail_log(self):
        fd = os.open(self.log_path, os.O_RDONLY)
        pending = b""
        try:
            while not self.stopping:
                data = os.read(fd, 1 << 22)
                if not data:
                    time.sleep(self.interval)
                    continue
                seen = now()
                *lines, pending = (pending + data).split(b"\n")
                items = []
                for line in lines:
                    record = json.loads(line)
                    if record.get("kind") in ("request", "response"):
                        record["t"] = seen
                        items.append(record)
                self._add(items)
        finally:
            os.close(fd)

    def _poll_http(self):
        client = Http(self.control_port)
        seen_count = {"response": 0, "request": 0}  # each log only grows
        try:
            while not self.stopping:
                started = now()
                batch = []
                for kind in ("response", "request"):
                    status, data = client.call("GET", f"/{kind}s")
                    records = json.loads(data)
                    for record in records[seen_count[kind]:]:
                        record["kind"] = kind
                        batch.append(record)
                    seen_count[kind] = len(records)
                seen = now()  # one stamp per poll: a reply never looks earlier than its cause
                for record in batch:
                    record["t"] = seen
                batch.sort(key=lambda r: r["seq"])
                self._add(batch)
                time.sleep(max(0.0, self.interval - (now() - started)))
        finally:
            client.close()

    def wait(self, what, predicate, timeout, alive):
        """Blocks until predicate(records) returns something truthy; returns it."""
        deadline = now() + timeout
        with self.cond:
            while True:
                value = predicate(self.records)
                if value:
                    return value
                if self.error:
                    raise Failure(f"timeline failed: {self.error!r}")
                alive()
                if now() > deadline:
                    raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
                self.cond.wait(0.05)

    def last_seq(self):
        with self.cond:
            return max((r["seq"] for r in self.records), default=0)

    def stop(self):
        self.stopping = True


def reply_to(records, response):
    """The proxy's request answering `response` (same stream and type, echoing its nonce)."""
    return next((r for r in records if r["kind"] == "request" and r["stream"] == response["stream"]
                 and r["type"] == response["type"] and r["response_nonce"] == response["nonce"]), None)


def describe_nack(request):
    return " ".join((request.get("error") or "").split())  # protobuf text inserts odd spacing


# ---------------------------------------------------------------------------------------------
# Processes and /proc


class Processes:
    """What this script started; ended by PID only (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, stdout=None):
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=stdout or log, stderr=log, start_new_session=True)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def stop(self, proc, grace=10):
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc, grace=5)
            except (ProcessLookupError, ChildProcessError):
                pass


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise Failure(f"/proc/{pid}/status has no {field}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle_rss(pid, alive, min_wait=1.0, interval=0.25, window=6, tolerance=0.005, timeout=30.0):
    """VmRSS (KiB) once the last `window` samples (1.5 s) are within `tolerance` of each
    other, or after `timeout`. -> (kib, settled)"""
    time.sleep(min_wait)
    samples = []
    deadline = now() + timeout
    while True:
        alive()
        samples.append(status_kib(pid, "VmRSS"))
        recent = samples[-window:]
        if len(recent) == window and max(recent) - min(recent) <= tolerance * max(recent):
            return samples[-1], True
        if now() > deadline:
            return samples[-1], False
        time.sleep(interval)


def wait_until(what, predicate, timeout, alive, interval=0.05):
    deadline = now() + timeout
    while True:
        alive()
        try:
            if predicate():
                return
        except OSError:
            pass  # not listening yet
        if now() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Serving check (admin API)


class ServingCheck:
    """Polls the proxy's admin API until all N clusters serve with all their endpoints.

    Envoy: `/stats?type=Gauges&filter=^cluster_manager\\.(active|warming)_clusters$`; serving
    when warming_clusters == 0 and active_clusters >= N + 2 (xds, base): an EDS cluster stays
    warming until its ClusterLoadAssignment is applied. (~11 ms a query at N=1000, where the
    per-cluster membership stats take ~60 ms and /clusters ~55 ms.)
    Sluice: `/clusters` (text, by name as Envoy prints it) shows the last svc cluster with all
    its host lines. Sluice keeps warming EDS clusters out of its configuration and swaps its
    cluster map at once, so the last cluster there means all are; the first such answer is still
    parsed in full (every svc cluster with all its endpoints) and polling goes on if it is not.
    (~1 ms a query until the new clusters exist, ~50 ms after; its /stats takes ~140 ms at
    N=1000, filtered or not.)

    Polling starts when the first EDS response naming new clusters is sent (no EDS cluster
    serves before its endpoints arrive); a query starts `interval` after the previous one
    started (at least 2 ms after it ended). Serving is reported as the time the first positive
    answer was read (an upper bound: it includes producing the answer, ~50 ms for Sluice's 7 MB
    /clusters at N=1000) with, as the lower bound, the time the last negative query was sent
    (or, if the first answer was positive, the time polling started).
    """

    def __init__(self, proxy, admin_port, workload, interval):
        self.proxy = proxy
        self.workload = workload
        self.interval = interval
        self.client = Http(admin_port, timeout=60)
        if proxy == "envoy":
            self.path = "/stats?type=Gauges&filter=" + quote(r"^cluster_manager\.(active|warming)_clusters$", safe="")
        else:
            self.path = "/clusters"
        self.last = max(workload.names)
        self.last_host_line = re.compile(
            rb"^" + re.escape(self.last.encode()) + rb"::\d+\.\d+\.\d+\.\d+:\d+::cx_active::", re.M)
        self.durations = []
        self.trace = []  # (time seen, detail) whenever the detail changes
        self.started_at = self.serving_at = None
        self.last_negative_sent = None  # when the last "not yet" query was sent
        self.last_detail = ""
        self.error = None
        self.stopping = False
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def evaluate(self, data):
        """-> (ok, detail)"""
        if self.proxy == "envoy":
            gauges = dict(re.findall(r"^cluster_manager\.(\w+): (\d+)$", data.decode(), re.M))
            active, warming = int(gauges.get("active_clusters", 0)), int(gauges.get("warming_clusters", 0))
            return warming == 0 and active >= self.workload.clusters + 2, f"active {active}, warming {warming}"
        at = data.find(b"\n" + self.last.encode() + b"::")
        hosts = len(self.last_host_line.findall(data, at + 1)) if at >= 0 else 0
        if hosts != self.workload.expected[self.last]:
            return False, f"{self.last}: {hosts} hosts"
        problem = clusters_problem(data, self.workload)
        return problem is None, problem or "all complete"

    def _run(self):
        try:
            self.go.wait()
            self.started_at = now()
            while not self.stopping:
                started = now()
                status, data = self.client.call("GET", self.path)
                seen = now()
                self.durations.append(seen - started)
                ok, detail = self.evaluate(data) if status == 200 else (False, f"HTTP {status}")
                if detail != self.last_detail:
                    self.trace.append((seen, detail))
                    self.last_detail = detail
                if ok:
                    self.serving_at = seen
                    return
                self.last_negative_sent = started
                time.sleep(max(0.002, self.interval - (now() - started)))
        except Exception as error:
            self.error = error

    def begin(self):
        self.go.set()

    def wait(self, timeout, alive):
        deadline = now() + timeout
        while self.thread.is_alive():
            alive()
            if now() > deadline:
                raise Failure(f"never served all clusters within {timeout:.0f} s (last check: {self.last_detail})")
            self.thread.join(0.05)
        if self.error:
            raise Failure(f"serving check failed: {self.error!r}")
        return self.serving_at

    def close(self):
        self.stopping = True
        self.go.set()
        self.thread.join(5)
        self.client.close()


def clusters_problem(data, workload):
    """/clusters text must list every svc cluster with exactly its endpoints (host lines
    `svc-i::10.x.y.z:8080::cx_active::0`). -> a problem or None"""
    hosts = {}
    for name in re.findall(rb"^(svc-\d+)::\d+\.\d+\.\d+\.\d+:\d+::cx_active::", data, re.M):
        hosts[name] = hosts.get(name, 0) + 1
    wrong = [n for n in workload.names if hosts.get(n.encode(), 0) != workload.expected[n]]
    if wrong:
        return f"{len(wrong)} of {workload.clusters} clusters lack some endpoints (e.g. {wrong[:3]})"
    return None


# ---------------------------------------------------------------------------------------------
# One run


class Run:
    def __init__(self, bench, proxy, kind, index):
        self.bench = bench
        self.args = bench.args
        self.proxy = proxy
        self.kind = kind  # "serving" or "quiet"
        self.index = index
        base = 20000 + 10 * index  # fresh ports for every run
        self.grpc_port, self.control_port, self.admin_port = base, base + 1, base + 2
        self.dir = os.path.join(bench.work, f"{index:02d}-{proxy}-{kind}")
        os.makedirs(self.dir)
        self.server = self.proc = self.timeline = self.control = self.admin = None

    def alive(self):
        for proc, name in ((self.proc, self.proxy), (self.server, "xds_server")):
            if proc is not None and proc.poll() is not None:
                raise Failure(f"{name} exited with status {proc.returncode}; log tail:\n{tail(proc.log_path)}")

    def start_server(self):
        trace = os.path.join(self.dir, "xds.jsonl")
        open(trace, "w").close()
        argv = self.bench.ns.prefix(self.bench.harness_cpu) + [
            sys.executable, SERVER, "--grpc", f"127.0.0.1:{self.grpc_port}",
            "--control", f"127.0.0.1:{self.control_port}", "--log", trace]
        self.server = self.bench.procs.start(argv, os.path.join(self.dir, "xds-server.log"), stdout=subprocess.PIPE)
        deadline, line = now() + 60, b""
        while not line.endswith(b"\n"):
            if now() > deadline or self.server.poll() is not None:
                raise Failure(f"xds_server did not start: {tail(self.server.log_path)}")
            if select.select([self.server.stdout], [], [], 0.1)[0]:
                chunk = os.read(self.server.stdout.fileno(), 100)
                if not chunk:
                    raise Failure(f"xds_server closed its stdout: {tail(self.server.log_path)}")
                line += chunk
        if line.strip() != b"ready":
            raise Failure(f"xds_server printed {line!r}")
        self.control = Http(self.control_port, timeout=600)
        self.timeline = Timeline(self.args.timing, trace, self.control_port)
        self.timeline.start()

    def start_proxy(self):
        config = os.path.join(self.dir, "bootstrap.json")
        with open(config, "w") as f:
            json.dump(bootstrap(self.args.mode, self.grpc_port, self.admin_port), f, indent=1)
        if self.proxy == "envoy":
            command = [self.args.envoy, "-c", config, "--concurrency", "1", "--disable-hot-restart",
                       "--log-level", "warning"]
        else:
            command = [self.bench.sluice, "proxy", "--config", config, "--workers", "1", "--log-level", "notice"]
        self.proc = self.bench.procs.start(self.bench.ns.prefix(self.bench.proxy_cpu) + command,
                                           os.path.join(self.dir, f"{self.proxy}.log"))
        self.admin = Http(self.admin_port, timeout=60)

    def wait(self, what, predicate):
        return self.timeline.wait(what, predicate, self.args.timeout, self.alive)

    def wait_ack(self, type_url, version, after_seq):
        """The last response of type_url/version sent after after_seq, and the proxy's ACK."""
        def find(records):
            sent = [r for r in records if r["kind"] == "response" and r["type"] == type_url
                    and r["version"] == version and r["seq"] > after_seq]
            reply = reply_to(records, sent[-1]) if sent else None
            return (sent[-1], reply) if reply else None
        response, reply = self.wait(f"the reply to {SHORT[type_url]} {version}", find)
        if reply["error"] is not None:
            raise Failure(f"{self.proxy} NACKed {SHORT[type_url]} {version}: {describe_nack(reply)}")
        return response, reply

    def run(self):
        wl, args = self.bench.workload, self.args
        result = {"proxy": self.proxy, "kind": self.kind, "run": self.index}
        serving = None
        try:
            self.start_server()
            for payload in wl.baseline:  # stored now, sent when the proxy asks
                self.control.json("POST", "/resources", payload)
            self.start_proxy()
            pid = self.proc.pid
            for type_url in (CDS, EDS, LDS):
                self.wait_ack(type_url, "v1", 0)
            wait_until("/ready", lambda: self.admin.call("GET", "/ready")[0] == 200, 60, self.alive)
            result["rss_baseline_kib"], result["baseline_settled"] = settle_rss(pid, self.alive)

            # The endpoints first: stored; a SotW stream gets its unchanged `base` again.
            seq = self.timeline.last_seq()
            started = now()
            self.control.json("POST", "/resources", wl.update_eds)
            result["eds_store_s"] = now() - started
            if args.mode == "sotw":
                self.wait_ack(EDS, "v2", seq)
            time.sleep(0.5)
            seq = self.timeline.last_seq()
            cpu_before = cpu_seconds(pid)
            if self.kind == "serving":
                serving = ServingCheck(self.proxy, self.admin_port, wl, args.serving_interval)

            started = now()
            self.control.json("POST", "/resources", wl.update_cds)
            result["cds_store_s"] = now() - started
            cds_sent = self.wait("the CDS v2 response", lambda records: next(
                (r for r in records if r["kind"] == "response" and r["type"] == CDS
                 and r["version"] == "v2" and r["seq"] > seq), None))
            t0 = cds_sent["t"]
            what, record = self.wait("an EDS response for the new clusters (or a CDS NACK)",
                                     lambda records: self.eds_or_nack(records, cds_sent))
            if what == "nack":
                raise Failure(f"{self.proxy} NACKed CDS v2: {describe_nack(record)}")
            if serving:
                serving.begin()
            cds_ack = self.wait("the reply to CDS v2", lambda records: reply_to(records, cds_sent))
            if cds_ack["error"] is not None:
                raise Failure(f"{self.proxy} NACKed CDS v2: {describe_nack(cds_ack)}")
            result["cds_ack_ms"] = (cds_ack["t"] - t0) * 1000
            result.update(self.eds_timing(cds_sent, t0))
            if serving:
                result["serving_ms"] = (serving.wait(args.timeout, self.alive) - t0) * 1000
                # Lower bound: the last negative query sent, else the start of polling (no EDS
                # cluster serves before the EDS response is sent).
                result["serving_after_ms"] = ((serving.last_negative_sent or serving.started_at) - t0) * 1000
                result["serving_polls"] = len(serving.durations)
                result["serving_polls_from_ms"] = (serving.started_at - t0) * 1000
                result["serving_trace"] = [(round((t - t0) * 1000, 1), d) for t, d in serving.trace]
                result["serving_query_ms"] = statistics.median(serving.durations) * 1000
                result["serving_query_max_ms"] = max(serving.durations) * 1000
                serving.close()
                serving = None

            result["rss_after_kib"], result["after_settled"] = settle_rss(pid, self.alive)
            result["cpu_update_ms"] = (cpu_seconds(pid) - cpu_before) * 1000
            result["rss_growth_kib"] = result["rss_after_kib"] - result["rss_baseline_kib"]
            result["hwm_kib"] = status_kib(pid, "VmHWM")
            status, data = self.admin.call("GET", "/clusters")
            problem = f"HTTP {status}" if status != 200 else clusters_problem(data, wl)
            if problem:
                raise Failure(f"/clusters after the update: {problem}")
            nack = next((r for r in self.timeline.records if r["kind"] == "request" and r["error"]), None)
            if nack:
                raise Failure(f"{self.proxy} NACKed {SHORT.get(nack['type'], nack['type'])}: {describe_nack(nack)}")
        except Failure as failure:
            result["error"] = str(failure)
            result["proxy_log_tail"] = tail(os.path.join(self.dir, f"{self.proxy}.log"))
        finally:
            if serving:
                serving.close()
            self.stop()
        return result

    def eds_or_nack(self, records, cds_sent):
        reply = reply_to(records, cds_sent)
        if reply and reply["error"] is not None:
            return "nack", reply
        wanted = set(self.bench.workload.names)
        response = next((r for r in records if r["kind"] == "response" and r["type"] == EDS
                         and r["seq"] > cds_sent["seq"] and wanted & set(r["names"])), None)
        return ("eds", response) if response else None

    def eds_timing(self, cds_sent, t0):
        wanted = set(self.bench.workload.names)

        def subscription(records):
            got = set()
            for r in records:
                if r["kind"] == "request" and r["type"] == EDS and r["seq"] > cds_sent["seq"]:
                    got |= set(r["resource_names"]) | set(r["subscribe"])
                    if wanted <= got:
                        return r
            return None

        def responses(records):
            got, chosen = set(), []
            for r in records:
                if r["kind"] == "response" and r["type"] == EDS and r["seq"] > cds_sent["seq"] \
                        and wanted & set(r["names"]):
                    chosen.append(r)
                    got |= set(r["names"])
                    if wanted <= got:
                        reply = reply_to(records, r)
                        return (chosen, reply) if reply else None
            return None

        request = self.wait("the EDS request for the new clusters", subscription)
        chosen, reply = self.wait("the reply to the EDS response for the new clusters", responses)
        if reply["error"] is not None:
            raise Failure(f"{self.proxy} NACKed EDS v2: {describe_nack(reply)}")
        return {"eds_request_ms": (request["t"] - t0) * 1000,
                "eds_response_ms": (chosen[0]["t"] - t0) * 1000,
                "eds_ack_ms": (reply["t"] - chosen[0]["t"]) * 1000,
                "eds_ack_total_ms": (reply["t"] - t0) * 1000,
                "eds_responses": len(chosen)}

    def stop(self):
        if self.timeline:
            self.timeline.stop()
        for client in (self.control, self.admin):
            if client:
                client.close()
        self.bench.procs.stop(self.proc)
        self.bench.procs.stop(self.server)
        if self.timeline:
            self.timeline.join(5)


# ---------------------------------------------------------------------------------------------
# Report

KIB = 1 / 1024
METRICS = [  # label, key, scale, runs
    ("CDS response -> CDS ACK (ms)", "cds_ack_ms", 1, "quiet"),
    ("CDS response -> EDS request (ms)", "eds_request_ms", 1, "quiet"),
    ("CDS response -> EDS response (ms)", "eds_response_ms", 1, "quiet"),
    ("EDS response -> EDS ACK (ms)", "eds_ack_ms", 1, "quiet"),
    ("CDS response -> EDS ACK (ms)", "eds_ack_total_ms", 1, "quiet"),
    ("CDS response -> serving all clusters (ms)", "serving_ms", 1, "serving"),
    ("  lower bound (ms)", "serving_after_ms", 1, "serving"),
    ("  CDS response -> EDS ACK, same runs (ms)", "eds_ack_total_ms", 1, "serving"),
    ("RSS baseline (MiB)", "rss_baseline_kib", KIB, "quiet"),
    ("RSS after the update (MiB)", "rss_after_kib", KIB, "quiet"),
    ("RSS growth (MiB)", "rss_growth_kib", KIB, "quiet"),
    ("peak RSS, VmHWM (MiB)", "hwm_kib", KIB, "quiet"),
    ("proxy CPU for the update (ms)", "cpu_update_ms", 1, "quiet"),
    ("serving check, one admin query (ms)", "serving_query_ms", 1, "serving"),
]


def median_of(results, proxy, key, scale, runs):
    values = [r[key] * scale for r in results if r["proxy"] == proxy and "error" not in r
              and key in r and runs in ("all", r["kind"])]
    return statistics.median(values) if values else None


def table(results):
    lines = [f"{'metric':<44}{'envoy':>10}{'sluice':>10}{'sluice/envoy':>14}  runs"]
    for label, key, scale, runs in METRICS:
        envoy, sluice = (median_of(results, p, key, scale, runs) for p in PROXIES)
        cells = "".join(f"{v:>10.1f}" if v is not None else f"{'-':>10}" for v in (envoy, sluice))
        ratio = f"{sluice / envoy:>14.2f}" if envoy and sluice is not None else f"{'-':>14}"
        lines.append(f"{label:<44}{cells}{ratio}  {runs}")
    counts = [f"{sum(1 for r in results if r['proxy'] == p and 'error' not in r)}/"
              f"{sum(1 for r in results if r['proxy'] == p)}" for p in PROXIES]
    lines.append(f"{'successful/all runs':<44}{counts[0]:>10}{counts[1]:>10}")
    return "\n".join(lines)


def summary(r):
    text = (f"CDS ack {r['cds_ack_ms']:.0f} ms, EDS request {r['eds_request_ms']:.0f} ms, "
            f"EDS response {r['eds_response_ms']:.0f} ms + ACK {r['eds_ack_ms']:.0f} ms, ")
    if "serving_ms" in r:
        text += (f"serving {r['serving_after_ms']:.0f}..{r['serving_ms']:.0f} ms ({r['serving_polls']} polls from "
                 f"{r['serving_polls_from_ms']:.0f} ms, median {r['serving_query_ms']:.0f} ms), ")
    return text + (f"RSS {r['rss_baseline_kib'] * KIB:.1f} -> {r['rss_after_kib'] * KIB:.1f} MiB "
                   f"(peak {r['hwm_kib'] * KIB:.1f}), CPU {r['cpu_update_ms']:.0f} ms")


def conditions(bench):
    args, wl = bench.args, bench.workload
    found = re.search(r"version: \S*?/([0-9][^/]*)/", sh(args.envoy, "--version", check=False))
    envoy_version = found.group(1) if found else "?"
    rev = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).strip() or "?"
    dirty = sh("git", "-C", ROOT, "status", "--porcelain", "--", "Sources", "Package.swift", check=False).strip()
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), platform.machine())
    per = "/".join(map(str, sorted(set(wl.expected.values()))))
    sizes = (f"; resource bytes: CDS {wl.sizes['cds_bytes'] / 1024:.0f} KiB, EDS {wl.sizes['eds_bytes'] / 1024:.0f} KiB"
             if wl.sizes else "")
    pin = (f"proxy on CPU {bench.proxy_cpu}, xds_server and this script on CPU {bench.harness_cpu}"
           if bench.proxy_cpu is not None else "not pinned")
    timing = ("server --log trace tailed every 2 ms" if args.timing == "log"
              else "GET /responses and /requests polled every 10 ms")
    return "\n".join([
        "command: " + " ".join(sys.argv),
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; Linux {platform.release()}, {os.cpu_count()} CPUs "
        f"({cpu_model}); {pin}",
        f"envoy {envoy_version} (--concurrency 1 --disable-hot-restart); sluice {args.sluice} "
        f"(sha256 {bench.sluice_sha}, built {bench.sluice_built}; tree at HEAD {rev}"
        f"{', Sources modified' if dirty else ''}; --workers 1)",
        f"update: CDS {wl.clusters} EDS clusters + base, EDS {wl.clusters} ClusterLoadAssignments with "
        f"{wl.endpoints} endpoints ({per} each){sizes}",
        f"ADS {args.mode} ({'GRPC' if args.mode == 'sotw' else 'DELTA_GRPC'}); {args.rounds} rounds of 4 runs "
        f"(envoy/sluice serving, envoy/sluice quiet), fresh xds_server and proxy each; namespace {bench.ns.name}",
        f"time stamps: {timing}; serving polled every {args.serving_interval * 1000:.0f} ms from the first new "
        f"EDS response; medians over the runs named in the last column",
    ])


# ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.ns = Namespace(f"slx-{os.getpid()}")
        self.procs = Processes()
        self.keep = bool(args.workdir)
        self.work = args.workdir or tempfile.mkdtemp(prefix="sluice-bench-xds.")
        os.makedirs(self.work, exist_ok=True)
        cpus = sorted(os.sched_getaffinity(0))
        if args.no_pin or len(cpus) < 2:
            self.proxy_cpu = self.harness_cpu = None
        else:
            self.proxy_cpu, self.harness_cpu = cpus[-1], cpus[0]
        # A private copy: the build directory may be rebuilt while this runs.
        self.sluice = os.path.join(self.work, "sluice")
        shutil.copy2(args.sluice, self.sluice)
        with open(self.sluice, "rb") as f:
            self.sluice_sha = hashlib.sha256(f.read()).hexdigest()[:12]
        self.sluice_built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(self.sluice)))
        self.workload = None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sluice", required=True, help="the sluice binary")
    parser.add_argument("--envoy", required=True, help="the envoy binary")
    parser.add_argument("--clusters", type=int, default=1000, help="N (default 1000)")
    parser.add_argument("--endpoints", type=int, default=10000, help="M, spread evenly (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 4 runs (default 3)")
    parser.add_argument("--mode", choices=["sotw", "delta"], default="sotw", help="ADS flavour (default sotw)")
    parser.add_argument("--json", help="write every run's raw numbers to this file")
    parser.add_argument("--timing", choices=["log", "http"], default="log",
                        help="how response and ACK times are observed (default log)")
    parser.add_argument("--serving-interval", type=float, default=0.010, metavar="S",
                        help="admin poll interval of the serving check (default 0.01)")
    parser.add_argument("--timeout", type=float, default=300, help="timeout of each step, seconds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the proxy and the harness to CPUs")
    parser.add_argument("--workdir", help="keep configs, logs and traces here (default: a temporary "
                                          "directory, removed when every run succeeded)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_xds.py needs root: it creates a network namespace")
    if args.clusters < 1 or args.endpoints < args.clusters or args.rounds < 1:
        sys.exit("need --clusters >= 1, --endpoints >= --clusters, --rounds >= 1")
    for path in (args.sluice, args.envoy, SERVER):
        if not os.path.exists(path):
            sys.exit(f"missing {path}")

    bench = Bench(args)
    if bench.harness_cpu is not None:
        os.sched_setaffinity(0, {bench.harness_cpu})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    try:
        print(f"building the resources ({args.clusters} clusters, {args.endpoints} endpoints)", flush=True)
        bench.workload = Workload(args.clusters, args.endpoints)
        bench.ns.create()
        bench.ns.enter()
        order = [(proxy, kind) for _ in range(args.rounds) for kind in ("serving", "quiet") for proxy in PROXIES]
        for index, (proxy, kind) in enumerate(order):
            result = Run(bench, proxy, kind, index).run()
            results.append(result)
            head = f"[{index + 1}/{len(order)}] {proxy:<6} {kind:<7}"
            if "error" in result:
                print(f"{head} FAILED: {result['error']}", flush=True)
                if result.get("proxy_log_tail"):
                    print("    " + result["proxy_log_tail"].rstrip().replace("\n", "\n    "), flush=True)
            else:
                print(f"{head} {summary(result)}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        bench.procs.stop_all()
        bench.ns.delete()
        os.remove(bench.sluice)
    failed = not results or any("error" in r for r in results)
    print()
    print(conditions(bench))
    if failed or bench.keep:
        print(f"configs, logs and xDS traces: {bench.work}")
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": conditions(bench), "args": vars(args), "sizes": bench.workload.sizes
                       if bench.workload else {}, "runs": results}, f, indent=1)
    if not failed and not bench.keep:
        shutil.rmtree(bench.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
