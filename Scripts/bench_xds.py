#!/usr/bin/env python3
"""xDS update benchmark: Sluice against Envoy in the same run (see Scripts/bench --xds).

    bench_xds.py --sluice PATH --envoy PATH [--clusters 1000] [--endpoints 10000] [--rounds 3]
                 [--mode sotw|delta] [--json FILE] [--timing log|http] [--keep]

Runs as root. Everything happens inside a network namespace of its own (slx-<pid>, only `lo`),
which is deleted at the end, also on failure; only the processes this script started are ended,
by PID. For each run (Envoy, then Sluice, alternating for --rounds) it starts a fresh copy of
Tests/SluiceEndToEndTests/Tools/xds_server.py and the proxy with the same dynamic bootstrap
(ADS, one worker), then:

  baseline  CDS v1 = [base] (EDS), EDS v1 = [base], LDS v1 = [base: tcp_proxy 127.0.0.1:10000
            -> base]; waits for the three ACKs and /ready, then for RSS to settle.
  update    EDS v2 = base + N ClusterLoadAssignments (stored first; a SotW proxy gets only the
            unchanged `base` again and ACKs it), then CDS v2 = base + N EDS clusters svc-0..N-1.
            The proxy asks for the new EDS names and the server answers from what it stores.

Metrics (medians over the rounds):
  CDS ack     server's CDS v2 response sent -> the proxy's request echoing its nonce (ACK)
  EDS request CDS v2 response sent -> the request subscribing the new EDS names
  EDS ack     first EDS response carrying new names sent -> ACK of the response completing them
  serving     CDS v2 response sent -> the admin API shows all N clusters with all endpoints
  RSS         VmRSS after the baseline settled, after the update settled, growth, VmHWM
  CPU         proxy utime+stime from just before the CDS push until the update settled

Time stamps: xds_server.py records no times, so this script stamps events when it sees them.
--timing log (default) tails the server's --log JSON-lines trace (written line-buffered at the
moment a request is received / just before a response is queued to the gRPC stream) every 2 ms;
--timing http polls GET /responses and GET /requests every 10 ms instead. Either way a stamp is
late by at most one poll interval plus the server's own latency.
"""
import argparse
import ctypes
import http.client
import json
import os
import platform
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

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


class Failure(Exception):
    """A run could not be measured (NACK, crash, timeout); the message says what was seen."""


def sh(*args, check=True):
    result = subprocess.run(args, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}")
    return result.stdout


def now():
    return time.monotonic()


# ---------------------------------------------------------------------------------------------
# Network namespace


class Namespace:
    """`ip netns add` + lo up; this process's threads move into it (setns) so that every admin
    and control-API connection stays inside; children are started with `ip netns exec`."""

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
        """Call from the main thread before any other thread starts: threads inherit it."""
        self.host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if self.libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into " + self.name)
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
        return taskset + ["ip", "netns", "exec", self.name]


# ---------------------------------------------------------------------------------------------
# HTTP (admin API and control API), keep-alive


class Http:
    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def call(self, method, path, body=None):
        """-> (status, bytes). One reconnect on a dropped keep-alive connection."""
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
# Resources (proto3 JSON), built once


def cluster(name):
    return {"@type": CDS, "name": name, "type": "EDS", "connect_timeout": "1s",
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}


def socket_address(address, port):
    return {"socket_address": {"address": address, "port_value": port}}


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
    """10.x.y.z for endpoint `index` (never connected to)."""
    value = index + 1
    return f"10.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


class Workload:
    """The baseline and update pushes as ready-to-send request bodies, and what they imply."""

    def __init__(self, clusters, endpoints):
        self.clusters = clusters
        self.endpoints = endpoints
        self.names = [f"svc-{i}" for i in range(clusters)]
        # Endpoints spread evenly: cluster i gets [i*M/N, (i+1)*M/N).
        self.expected = {}
        assignments = []
        for i, name in enumerate(self.names):
            lo, hi = i * endpoints // clusters, (i + 1) * endpoints // clusters
            self.expected[name] = hi - lo
            assignments.append(assignment(name, [(endpoint_address(k), 8080) for k in range(lo, hi)]))
        base_cla = assignment("base", [("127.0.0.1", 9)])
        self.baseline = [
            ("cds", body("cds", "v1", [cluster("base")])),
            ("eds", body("eds", "v1", [base_cla])),
            ("lds", body("lds", "v1", [listener("base", "base")])),
        ]
        self.update_eds = body("eds", "v2", [base_cla] + assignments)
        self.update_cds = body("cds", "v2", [cluster("base")] + [cluster(n) for n in self.names])
        self.sizes = self._wire_sizes([base_cla] + assignments, [cluster("base")] + [cluster(n) for n in self.names])

    @staticmethod
    def _wire_sizes(assignments, clusters):
        """Serialized resource bytes of the two update responses (approximate wire size)."""
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


def body(kind, version, resources):
    return json.dumps({"type": kind, "version": version, "resources": resources}).encode()


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
# Timeline: every request/response of the server, stamped when this script saw it


class Timeline(threading.Thread):
    def __init__(self, timing, log_path, control_port):
        super().__init__(daemon=True)
        self.timing = timing
        self.log_path = log_path
        self.control_port = control_port
        self.records = []  # dicts from the server plus "t" (monotonic seconds) and "kind"
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
                pending += data
                *lines, pending = pending.split(b"\n")
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
        last = 0
        while not self.stopping:
            started = now()
            batch = []
            for kind in ("response", "request"):
                records = json.loads(client.call("GET", f"/{kind}s")[1])
                seen = now()
                for record in records:
                    if record["seq"] > last:
                        record["kind"], record["t"] = kind, seen
                        batch.append(record)
            batch.sort(key=lambda r: r["seq"])
            if batch:
                last = batch[-1]["seq"]
            self._add(batch)
            time.sleep(max(0.0, self.interval - (now() - started)))
        client.close()

    def wait(self, what, predicate, timeout, alive=None):
        """Blocks until predicate(records) returns something truthy; returns it."""
        deadline = now() + timeout
        with self.cond:
            while True:
                value = predicate(self.records)
                if value:
                    return value
                if self.error:
                    raise Failure(f"timeline failed: {self.error!r}")
                if alive is not None:
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
    return next((r for r in records if r["kind"] == "request" and r["stream"] == response["stream"]
                 and r["type"] == response["type"] and r["response_nonce"] == response["nonce"]), None)


def describe_nack(request):
    return " ".join((request.get("error") or "").split())


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """What this script started; ended by PID only (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, **kwargs):
        log = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdout=kwargs.pop("stdout", log), stderr=log,
                                start_new_session=True, **kwargs)
        proc.log_path = log_path
        log.close()
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
    """VmRSS (KiB) once the last `window` samples (1.5 s) stay within `tolerance` of each other
    (or after `timeout`); returns (kib, settled)."""
    time.sleep(min_wait)
    samples = []
    deadline = now() + timeout
    while True:
        alive()
        samples.append(status_kib(pid, "VmRSS"))
        recent = samples[-window:]
        if len(recent) == window and (max(recent) - min(recent)) <= tolerance * max(recent):
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


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# Serving checks (admin API)


class ServingCheck:
    """Polls the proxy's admin API until "all N clusters serve with all their endpoints".

    Envoy: `/stats?type=Gauges&filter=^cluster_manager\\.(active|warming)_clusters$`; serving
    when warming_clusters == 0 and active_clusters >= N + 2 (xds, base): an EDS cluster leaves
    warming only once its ClusterLoadAssignment is applied. (~10 ms per query at N=1000; the
    per-cluster membership stats cost ~60 ms, /clusters ~55 ms.)
    Sluice: `/clusters` (text) lists svc-<last> (Envoy's order: by name, so it is the last
    cluster printed) with all its host lines. Sluice keeps warming EDS clusters out of its
    configuration and swaps its whole cluster map at once, so the last cluster there means all
    are; the first positive answer is nevertheless parsed in full (every svc cluster with all
    its endpoints) and polling continues if it is not complete. (~50 ms per query at N=1000;
    its /stats costs ~140 ms, filtered or not.)

    Polling starts when the first EDS response naming new clusters is sent (no EDS cluster can
    serve before its endpoints arrive) and keeps the proxy's admin busy at most half the time:
    the next query starts `interval` after the previous one started, and not before as long a
    pause as the previous query took. A poll's time is when its answer was fully read.
    """

    def __init__(self, proxy, admin_port, workload, interval):
        self.proxy = proxy
        self.workload = workload
        self.interval = interval
        self.client = Http(admin_port, timeout=60)
        if proxy == "envoy":
            pattern = r"^cluster_manager\.(active|warming)_clusters$"
            self.path = "/stats?type=Gauges&filter=" + quote(pattern)
        else:
            self.path = "/clusters"
        self.last = max(workload.names)
        self.durations = []
        self.trace = []  # (seconds seen, detail) whenever the detail changes
        self.polls = 0
        self.started_at = None
        self.serving_at = None
        self.last_detail = ""
        self.error = None
        self.stopping = False
        self.start_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def evaluate(self, data):
        """-> (ok, detail)"""
        if self.proxy == "envoy":
            gauges = dict(re.findall(r"^cluster_manager\.(\w+): (\d+)$", data.decode(), re.M))
            active, warming = int(gauges.get("active_clusters", 0)), int(gauges.get("warming_clusters", 0))
            ok = warming == 0 and active >= self.workload.clusters + 2
            return ok, f"active {active}, warming {warming}"
        marker = b"\n" + self.last.encode() + b"::"
        at = data.find(marker)
        hosts = len(re.findall(rb"^[^:\n]+::\d+\.\d+\.\d+\.\d+:\d+::cx_active::", data[at + 1:], re.M)) if at >= 0 else 0
        if hosts != self.workload.expected[self.last]:
            return False, f"{self.last}: {hosts} hosts"
        problem = clusters_problem(data, self.workload)
        return problem is None, problem or "all complete"

    def _run(self):
        try:
            self.start_event.wait()
            self.started_at = now()
            while not self.stopping:
                started = now()
                status, data = self.client.call("GET", self.path)
                seen = now()
                took = seen - started
                self.polls += 1
                self.durations.append(took)
                ok, detail = self.evaluate(data) if status == 200 else (False, f"HTTP {status}")
                if detail != self.last_detail:
                    self.trace.append((seen, detail))
                self.last_detail = detail
                if ok:
                    self.serving_at = seen
                    return
                time.sleep(max(0.0, self.interval - took, took - (now() - seen)))
        except Exception as error:
            self.error = error

    def start(self):
        """Starts the thread; polling begins with begin()."""
        self.thread.start()

    def begin(self):
        self.start_event.set()

    def wait(self, timeout, alive):
        deadline = now() + timeout
        while self.thread.is_alive():
            alive()
            if now() > deadline:
                raise Failure(f"never served all clusters within {timeout:.0f} s "
                              f"(last check: {self.last_detail})")
            self.thread.join(0.05)
        if self.error:
            raise Failure(f"serving check failed: {self.error!r}")
        return self.serving_at

    def close(self):
        self.stopping = True
        self.start_event.set()
        self.thread.join(5)
        self.client.close()


def clusters_problem(data, workload):
    """/clusters text must list every svc cluster with exactly its endpoints (host lines
    `name::10.x.y.z:8080::cx_active::0`). Returns a problem or None."""
    hosts = {}
    for name in re.findall(rb"^(svc-\d+)::\d+\.\d+\.\d+\.\d+:\d+::cx_active::", data, re.M):
        hosts[name] = hosts.get(name, 0) + 1
    wrong = [n for n in workload.names if hosts.get(n.encode(), 0) != workload.expected[n]]
    if wrong:
        return f"{len(wrong)} of {workload.clusters} clusters without all their endpoints (e.g. {wrong[:3]})"
    return None


def verify_clusters(admin, workload):
    """After the measurement: the full /clusters check. Returns a problem or None."""
    status, data = admin.call("GET", "/clusters")
    if status != 200:
        return f"/clusters -> HTTP {status}"
    problem = clusters_problem(data, workload)
    return f"/clusters after the update: {problem}" if problem else None


def quote(text):
    from urllib.parse import quote as q
    return q(text, safe="")


# ---------------------------------------------------------------------------------------------
# One run


class Run:
    def __init__(self, bench, proxy, index):
        self.bench = bench
        self.args = bench.args
        self.proxy = proxy
        self.index = index
        base = 20000 + 10 * index
        self.grpc_port, self.control_port, self.admin_port = base, base + 1, base + 2
        self.dir = os.path.join(bench.work, f"{index:02d}-{proxy}")
        os.makedirs(self.dir)
        self.server = self.proc = None
        self.timeline = None

    def alive(self):
        for proc, name in ((self.proc, self.proxy), (self.server, "xds_server")):
            if proc is not None and proc.poll() is not None:
                raise Failure(f"{name} exited with status {proc.returncode}; log tail:\n"
                              + tail(proc.log_path))

    def start_server(self):
        log = os.path.join(self.dir, "xds.jsonl")
        open(log, "w").close()
        argv = self.bench.ns.prefix(self.bench.harness_cpu) + [
            sys.executable, SERVER, "--grpc", f"127.0.0.1:{self.grpc_port}",
            "--control", f"127.0.0.1:{self.control_port}", "--log", log]
        self.server = self.bench.procs.start(argv, os.path.join(self.dir, "xds-server.log"),
                                             stdout=subprocess.PIPE)
        deadline = now() + 60
        line = b""
        while not line.endswith(b"\n"):
            if now() > deadline or self.server.poll() is not None:
                raise Failure(f"xds_server did not start: {tail(self.server.log_path)}")
            if select.select([self.server.stdout], [], [], 0.1)[0]:
                chunk = os.read(self.server.stdout.fileno(), 100)
                if not chunk:
                    raise Failure(f"xds_server closed stdout: {tail(self.server.log_path)}")
                line += chunk
        if line.strip() != b"ready":
            raise Failure(f"xds_server printed {line!r}")
        self.control = Http(self.control_port, timeout=600)
        self.timeline = Timeline(self.args.timing, log, self.control_port)
        self.timeline.start()

    def start_proxy(self):
        config = os.path.join(self.dir, "bootstrap.json")
        with open(config, "w") as f:
            json.dump(bootstrap(self.args.mode, self.grpc_port, self.admin_port), f, indent=1)
        if self.proxy == "envoy":
            command = [self.args.envoy, "-c", config, "--concurrency", "1", "--disable-hot-restart",
                       "--log-level", "warning"]
        else:
            command = [self.args.sluice, "proxy", "--config", config, "--workers", "1",
                       "--log-level", "notice"]
        self.proc = self.bench.procs.start(self.bench.ns.prefix(self.bench.proxy_cpu) + command,
                                           os.path.join(self.dir, f"{self.proxy}.log"))
        self.admin = Http(self.admin_port, timeout=60)

    def push(self, payload):
        reply = self.control.json("POST", "/resources", payload)
        return reply

    def wait_ack(self, type_url, version, after_seq, timeout):
        """The response of `type_url`/`version` sent after after_seq and the proxy's reply."""
        def find(records):
            sent = [r for r in records if r["kind"] == "response" and r["type"] == type_url
                    and r["version"] == version and r["seq"] > after_seq]
            if not sent:
                return None
            reply = reply_to(records, sent[-1])
            return (sent[-1], reply) if reply else None
        response, reply = self.timeline.wait(f"{SHORT[type_url]} {version} reply", find, timeout, self.alive)
        if reply["error"] is not None:
            raise Failure(f"{self.proxy} NACKed {SHORT[type_url]} {version}: {describe_nack(reply)}")
        return response, reply

    def run(self):
        args, wl = self.args, self.bench.workload
        result = {"proxy": self.proxy, "run": self.index}
        try:
            self.start_server()
            for _, payload in wl.baseline:
                self.push(payload)
            self.start_proxy()
            for type_url in (CDS, EDS, LDS):
                self.wait_ack(type_url, "v1", 0, 60)
            wait_until("/ready", lambda: self.admin.call("GET", "/ready")[0] == 200, 30, self.alive)
            pid = self.proc.pid
            result["rss_baseline_kib"], settled = settle_rss(pid, self.alive)
            result["baseline_settled"] = settled

            # EDS first (stored; SotW resends only the subscribed `base`, which the proxy ACKs).
            seq = self.timeline.last_seq()
            started = now()
            self.push(wl.update_eds)
            result["eds_push_seconds"] = now() - started
            if args.mode == "sotw":
                self.wait_ack(EDS, "v2", seq, 60)
            time.sleep(0.5)
            seq = self.timeline.last_seq()
            cpu_before = cpu_seconds(pid)

            serving = None
            if args.serving_interval > 0:
                serving = ServingCheck(self.proxy, self.admin_port, wl, args.serving_interval)
                serving.start()
            try:
                started = now()
                self.push(wl.update_cds)
                result["cds_push_seconds"] = now() - started
                cds_sent = self.timeline.wait("CDS v2 response", lambda records: next(
                    (r for r in records if r["kind"] == "response" and r["type"] == CDS
                     and r["version"] == "v2" and r["seq"] > seq), None), args.timeout, self.alive)
                t0 = cds_sent["t"]
                # Serving polls begin with the first EDS response naming new clusters.
                kind, record = self.timeline.wait(
                    "EDS response for the new clusters (or a CDS NACK)",
                    lambda records: self.eds_or_nack(records, cds_sent), args.timeout, self.alive)
                if kind == "nack":
                    raise Failure(f"{self.proxy} NACKed CDS v2: {describe_nack(record)}")
                if serving:
                    serving.begin()
                cds_ack = self.timeline.wait("CDS v2 reply", lambda records: reply_to(records, cds_sent),
                                             args.timeout, self.alive)
                if cds_ack["error"] is not None:
                    raise Failure(f"{self.proxy} NACKed CDS v2: {describe_nack(cds_ack)}")
                result["cds_ack_ms"] = (cds_ack["t"] - t0) * 1000
                result.update(self.eds_timing(cds_sent, t0))
                if serving:
                    serving_at = serving.wait(args.timeout, self.alive)
                    result["serving_ms"] = (serving_at - t0) * 1000
                    result["serving_polls_from_ms"] = (serving.started_at - t0) * 1000
            finally:
                if serving:
                    serving.close()
            if serving:
                result["serving_polls"] = serving.polls
                result["serving_trace"] = [(round((t - t0) * 1000, 1), d) for t, d in serving.trace]
                result["serving_query_ms_median"] = statistics.median(serving.durations) * 1000
                result["serving_query_ms_max"] = max(serving.durations) * 1000

            result["rss_after_kib"], result["after_settled"] = settle_rss(pid, self.alive)
            result["cpu_update_s"] = cpu_seconds(pid) - cpu_before
            result["rss_growth_kib"] = result["rss_after_kib"] - result["rss_baseline_kib"]
            result["hwm_kib"] = status_kib(pid, "VmHWM")
            problem = verify_clusters(self.admin, wl)
            if problem:
                raise Failure(problem)
            self.check_no_nacks()
        except Failure as failure:
            result["error"] = str(failure)
            result["proxy_log_tail"] = tail(os.path.join(self.dir, f"{self.proxy}.log"))
        finally:
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
        """-> (ms to the EDS subscription, ms from the first new-EDS response to the ACK of the
        one completing the names, number of such responses)."""
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

        request = self.timeline.wait("EDS request for the new clusters", subscription,
                                     self.args.timeout, self.alive)
        chosen, reply = self.timeline.wait("EDS ACK for the new clusters", responses,
                                           self.args.timeout, self.alive)
        if reply["error"] is not None:
            raise Failure(f"{self.proxy} NACKed EDS v2: {describe_nack(reply)}")
        return {"eds_request_ms": (request["t"] - t0) * 1000,
                "eds_response_ms": (chosen[0]["t"] - t0) * 1000,
                "eds_ack_ms": (reply["t"] - chosen[0]["t"]) * 1000,
                "eds_ack_after_cds_ms": (reply["t"] - t0) * 1000,
                "eds_responses": len(chosen)}

    def check_no_nacks(self):
        nacks = [r for r in self.timeline.records if r["kind"] == "request" and r["error"]]
        if nacks:
            raise Failure(f"{self.proxy} NACKed {SHORT.get(nacks[0]['type'], nacks[0]['type'])}: "
                          f"{describe_nack(nacks[0])}")

    def stop(self):
        if self.timeline:
            self.timeline.stop()
        for client in ("control", "admin"):
            if hasattr(self, client):
                getattr(self, client).close()
        self.bench.procs.stop(self.proc)
        self.bench.procs.stop(self.server)
        if self.server is not None and self.server.stdout:
            self.server.stdout.close()
        if self.timeline:
            self.timeline.join(5)


# ---------------------------------------------------------------------------------------------
# Report


METRICS = [
    ("CDS response -> CDS ACK (ms)", "cds_ack_ms", 1),
    ("CDS response -> EDS request (ms)", "eds_request_ms", 1),
    ("CDS response -> EDS response (ms)", "eds_response_ms", 1),
    ("EDS response -> EDS ACK (ms)", "eds_ack_ms", 1),
    ("CDS response -> EDS ACK (ms)", "eds_ack_after_cds_ms", 1),
    ("CDS response -> serving all clusters (ms)", "serving_ms", 1),
    ("RSS baseline (MiB)", "rss_baseline_kib", 1 / 1024),
    ("RSS after update (MiB)", "rss_after_kib", 1 / 1024),
    ("RSS growth (MiB)", "rss_growth_kib", 1 / 1024),
    ("peak RSS, VmHWM (MiB)", "hwm_kib", 1 / 1024),
    ("proxy CPU for the update (ms)", "cpu_update_s", 1000),
    ("serving check: admin query (ms)", "serving_query_ms_median", 1),
]


def median(results, proxy, key, scale):
    values = [r[key] * scale for r in results if r["proxy"] == proxy and "error" not in r and key in r]
    return statistics.median(values) if values else None


def report(bench, results):
    args, wl = bench.args, bench.workload
    lines = []
    ok = {p: sum(1 for r in results if r["proxy"] == p and "error" not in r) for p in ("envoy", "sluice")}
    lines.append(f"{'metric':<44}{'envoy':>12}{'sluice':>12}{'sluice/envoy':>14}")
    for label, key, scale in METRICS:
        envoy, sluice = (median(results, p, key, scale) for p in ("envoy", "sluice"))
        cells = [f"{v:>12.1f}" if v is not None else f"{'-':>12}" for v in (envoy, sluice)]
        ratio = f"{sluice / envoy:>14.2f}" if envoy and sluice is not None else f"{'-':>14}"
        lines.append(f"{label:<44}{''.join(cells)}{ratio}")
    lines.append(f"{'successful runs':<44}{ok['envoy']:>12}{ok['sluice']:>12}")
    return "\n".join(lines)


def conditions(bench):
    args, wl = bench.args, bench.workload
    envoy_version = sh(args.envoy, "--version", check=False).strip().split("version:")[-1].strip()
    try:
        rev = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).strip()
        dirty = sh("git", "-C", ROOT, "status", "--porcelain", "--", "Sources", check=False).strip()
        rev += " + uncommitted Sources changes" if dirty else ""
    except OSError:
        rev = "?"
    binary_time = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(args.sluice)))
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), platform.machine())
    per = sorted(set(wl.expected.values()))
    sizes = wl.sizes
    return "\n".join([
        "command: " + " ".join(sys.argv),
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; host: {platform.node()}, Linux {platform.release()}, "
        f"{os.cpu_count()} CPUs ({cpu_model})",
        f"envoy: {envoy_version} (--concurrency 1 --disable-hot-restart); sluice: {args.sluice} "
        f"(built {binary_time}, tree {rev}; --workers 1)",
        f"update: CDS {wl.clusters} EDS clusters (+ base), EDS {wl.clusters} ClusterLoadAssignments, "
        f"{wl.endpoints} endpoints ({'/'.join(map(str, per))} per cluster)"
        + (f"; resources {sizes['cds_bytes'] / 1024:.0f} KiB CDS, {sizes['eds_bytes'] / 1024:.0f} KiB EDS" if sizes else ""),
        f"ADS {args.mode} ({'GRPC' if args.mode == 'sotw' else 'DELTA_GRPC'}); rounds {args.rounds} "
        f"(envoy, sluice alternating, fresh xds_server + proxy each); namespace {bench.ns.name} (lo only)",
        f"CPUs: proxy on {bench.proxy_cpu if bench.proxy_cpu is not None else 'any'}, "
        f"xds_server and this script on {bench.harness_cpu if bench.harness_cpu is not None else 'any'}",
        f"timing: {args.timing} ("
        + ("server --log trace tailed every 2 ms" if args.timing == "log" else "GET /responses + /requests every 10 ms")
        + f"); serving checked every {args.serving_interval * 1000:.0f} ms via /stats membership_total; medians",
    ])


# ---------------------------------------------------------------------------------------------


def summary(r):
    text = (f"CDS ack {r['cds_ack_ms']:.0f} ms, EDS request {r['eds_request_ms']:.0f} ms, "
            f"EDS response {r['eds_response_ms']:.0f} ms + ACK {r['eds_ack_ms']:.0f} ms, ")
    if "serving_ms" in r:
        text += (f"serving {r['serving_ms']:.0f} ms ({r['serving_polls']} polls from "
                 f"{r['serving_polls_from_ms']:.0f} ms, {r['serving_query_ms_median']:.0f} ms each), ")
    return text + (f"RSS {r['rss_baseline_kib'] / 1024:.1f} -> {r['rss_after_kib'] / 1024:.1f} MiB "
                   f"(peak {r['hwm_kib'] / 1024:.1f}), CPU {r['cpu_update_s'] * 1000:.0f} ms")


class Bench:
    def __init__(self, args):
        self.args = args
        self.ns = Namespace(f"slx-{os.getpid()}")
        self.procs = Processes()
        self.work = args.workdir or tempfile.mkdtemp(prefix="sluice-bench-xds.")
        cpus = sorted(os.sched_getaffinity(0))
        if args.no_pin or len(cpus) < 2:
            self.proxy_cpu = self.harness_cpu = None
        else:
            self.proxy_cpu, self.harness_cpu = cpus[-1], cpus[0]
        self.workload = None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sluice", required=True)
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=["sotw", "delta"], default="sotw")
    parser.add_argument("--only", choices=["envoy", "sluice"], help="run one proxy only")
    parser.add_argument("--json", help="write every run's raw numbers here")
    parser.add_argument("--timing", choices=["log", "http"], default="log",
                        help="how response/ACK times are observed (see the module docstring)")
    parser.add_argument("--serving-interval", type=float, default=0.010, metavar="S",
                        help="admin API poll interval for the serving check (default 0.01)")
    parser.add_argument("--timeout", type=float, default=300, help="per-step timeout, seconds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin proxy / harness to CPUs")
    parser.add_argument("--workdir", help="keep logs here (default: a new temporary directory)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_xds.py needs root (it creates a network namespace)")
    if args.clusters < 1 or args.endpoints < args.clusters:
        sys.exit("need --clusters >= 1 and --endpoints >= --clusters")
    for path in (args.sluice, args.envoy, SERVER):
        if not os.path.exists(path):
            sys.exit(f"missing {path}")

    bench = Bench(args)
    if bench.harness_cpu is not None:
        os.sched_setaffinity(0, {bench.harness_cpu})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    try:
        print(f"building resources ({args.clusters} clusters, {args.endpoints} endpoints)...", flush=True)
        bench.workload = Workload(args.clusters, args.endpoints)
        bench.ns.create()
        bench.ns.enter()
        order = [args.only] * args.rounds if args.only else ["envoy", "sluice"] * args.rounds
        for index, proxy in enumerate(order):
            result = Run(bench, proxy, index).run()
            results.append(result)
            if "error" in result:
                print(f"[{index + 1}/{len(order)}] {proxy}: FAILED: {result['error']}", flush=True)
                if result.get("proxy_log_tail"):
                    print("  proxy log tail:\n    " + result["proxy_log_tail"].rstrip().replace("\n", "\n    "))
            else:
                print(f"[{index + 1}/{len(order)}] {proxy}: {summary(result)}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        bench.procs.stop_all()
        bench.ns.delete()
    print()
    print(conditions(bench))
    print(f"logs: {bench.work}")
    print()
    print(report(bench, results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": conditions(bench), "args": vars(args),
                       "sizes": bench.workload.sizes if bench.workload else {},
                       "runs": results}, f, indent=1)
    return 0 if results and all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
