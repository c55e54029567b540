#!/usr/bin/env python3
"""Sluice vs Envoy vs no proxy, same namespaces, same capture rules, one run (see Scripts/bench)."""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

P = "slb"
SERVER, CLIENT = "10.99.0.10", "10.99.0.11"
PROXY_CPU, LOAD_CPU = "1", "0"


def sh(*args, check=True, capture=True, timeout=300):
    result = subprocess.run(args, check=False, text=True, timeout=timeout,
                            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}")
    return result.stdout if capture else ""


def ns(name, *args, **kwargs):
    return sh("ip", "netns", "exec", f"{P}-{name}", *args, **kwargs)


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="sluice-bench.")
        self.processes = []

    # -- topology ---------------------------------------------------------------------------
    def build(self):
        self.teardown_namespaces()
        sh("ip", "netns", "add", f"{P}-lan")
        ns("lan", "ip", "link", "add", "br0", "type", "bridge")
        ns("lan", "ip", "link", "set", "br0", "up")
        for name, index in (("server", 10), ("client", 11)):
            sh("ip", "netns", "add", f"{P}-{name}")
            sh("ip", "-n", f"{P}-{name}", "link", "set", "lo", "up")
            sh("ip", "-n", f"{P}-{name}", "link", "add", "eth0", "type", "veth", "peer", "name", f"v{index}", "netns", f"{P}-lan")
            sh("ip", "-n", f"{P}-lan", "link", "set", f"v{index}", "master", "br0", "up")
            sh("ip", "-n", f"{P}-{name}", "addr", "add", f"10.99.0.{index}/24", "dev", "eth0")
            sh("ip", "-n", f"{P}-{name}", "link", "set", "eth0", "up")
        sh("ip", "netns", "add", f"{P}-node")
        sh("ip", "-n", f"{P}-node", "link", "set", "lo", "up")
        conf = os.path.join(self.work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {self.work}/nginx.pid; error_log {self.work}/nginx.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 8080 reuseport; location / {{ default_type text/plain; return 200 "{'x' * 64}"; }} }} }}
""")
        self.spawn("nginx", ["taskset", "-c", LOAD_CPU, "ip", "netns", "exec", f"{P}-server", "nginx", "-c", conf])
        self.spawn("iperf3", ["taskset", "-c", LOAD_CPU, "ip", "netns", "exec", f"{P}-server", "iperf3", "-s", "-p", "5201"])
        self.wait_for(lambda: ns("client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{SERVER}:8080/", check=False) == "200")

    def spawn(self, name, argv):
        log = open(os.path.join(self.work, f"{name}.log"), "w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
        self.processes.append(process)
        return process

    def stop(self, process):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def wait_for(self, condition, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if condition():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("timed out waiting for the benchmark set-up")

    def teardown_namespaces(self):
        for line in sh("ip", "netns", "list").splitlines():
            name = line.split()[0]
            if name.startswith(f"{P}-"):
                sh("ip", "netns", "del", name, check=False)

    def teardown(self):
        for process in reversed(self.processes):
            self.stop(process)
        self.teardown_namespaces()
        shutil.rmtree(self.work, ignore_errors=True)

    # -- proxies ----------------------------------------------------------------------------
    def start_sluice(self):
        socket = os.path.join(self.work, "agent.sock")
        agent = self.spawn("sluice-agent", ["ip", "netns", "exec", f"{P}-node", self.args.sluice, "agent", "--socket", socket,
                                            "--state-dir", os.path.join(self.work, "state")])
        self.wait_for(lambda: os.path.exists(socket))
        proxy = self.spawn("sluice-proxy", ["taskset", "-c", PROXY_CPU, "ip", "netns", "exec", f"{P}-node", self.args.sluice,
                                            "proxy", "--config", self.args.bootstrap, "--agent-socket", socket, "--workers", "1",
                                            "--log-level", "warning"])
        self.wait_for(lambda: "LIVE" in ns("node", "curl", "-s", "http://127.0.0.1:15000/ready", check=False))
        sh(self.args.sluice, "enroll", "--netns", f"{P}-client", "--socket", socket)

        def stop():
            sh(self.args.sluice, "unenroll", "--netns", f"{P}-client", "--socket", socket)
            self.stop(proxy)
            self.stop(agent)
        return proxy.pid, stop

    def start_envoy(self):
        sh(self.args.sluice, "rules", "install", "--netns", f"{P}-client")
        envoy = self.spawn("envoy", ["taskset", "-c", PROXY_CPU, "ip", "netns", "exec", f"{P}-client", self.args.envoy,
                                     "-c", self.args.bootstrap, "--concurrency", "1", "--log-level", "warning",
                                     "--base-id", str(os.getpid() % 60000)])
        self.wait_for(lambda: "LIVE" in ns("client", "curl", "-s", "http://127.0.0.1:15000/ready", check=False), timeout=60)

        def stop():
            self.stop(envoy)
            sh(self.args.sluice, "rules", "remove", "--netns", f"{P}-client")
        return envoy.pid, stop

    # -- measurements -----------------------------------------------------------------------
    @staticmethod
    def cpu_seconds(pid):
        if pid is None:
            return 0.0
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wrk(self, pid, close):
        headers = ["-H", "Connection: close"] if close else []
        before = self.cpu_seconds(pid)
        out = ns("client", "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{self.args.connections}", f"-d{self.args.duration}s",
                 "--latency", *headers, f"http://{SERVER}:8080/", timeout=self.args.duration + 60)
        cpu = self.cpu_seconds(pid) - before
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        errors = re.search(r"Socket errors: (.*)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {
            "rps": rps,
            "p50_ms": self.latency(out, "50%"),
            "p99_ms": self.latency(out, "99%"),
            "cpu_us_per_request": cpu / requests * 1e6 if pid else None,
            "errors": (errors.group(1) if errors else "") + (f" non2xx={non2xx.group(1)}" if non2xx else ""),
        }

    @staticmethod
    def latency(out, label):
        match = re.search(rf"\s{re.escape(label)}\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    def bulk(self, pid):
        before = self.cpu_seconds(pid)
        out = ns("client", "taskset", "-c", LOAD_CPU, "iperf3", "-c", SERVER, "-p", "5201", "-t", str(self.args.duration), "-J",
                 timeout=self.args.duration + 60)
        cpu = self.cpu_seconds(pid) - before
        gbps = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
        return {"gbps": gbps, "cpu_s_per_gb": cpu / (gbps * self.args.duration / 8) if pid else None}

    def h2load(self, pid):
        if pid is None:
            # nginx here speaks HTTP/1.1 only on its port; there is no direct HTTP/2 path.
            return {"rps": None, "p50_ms": None, "p99_ms": None, "cpu_us_per_request": None, "errors": ""}
        log = os.path.join(self.work, "h2load-requests.log")
        before = self.cpu_seconds(pid)
        out = ns("client", "taskset", "-c", LOAD_CPU, "h2load", "-c", "4", "-m", "16", "-D", str(self.args.duration),
                 f"--log-file={log}", f"http://{SERVER}:8080/", timeout=self.args.duration + 60)
        cpu = self.cpu_seconds(pid) - before
        done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
        # One line per request: start time, status, duration in µs.
        with open(log) as f:
            durations = sorted(int(line.split()[2]) for line in f if line.strip())
        os.remove(log)

        def percentile(q):
            return durations[min(len(durations) - 1, int(q * len(durations)))] / 1000 if durations else None
        return {
            "rps": rps,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "cpu_us_per_request": cpu / max(int(done.group(2)), 1) * 1e6 if pid else None,
            "errors": "" if done and done.group(4) == "0" and done.group(5) == "0" else f"h2load: {done.group(0) if done else out[-300:]}",
        }

    @staticmethod
    def rss_kib(pid):
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))

    def idle_connections(self, pid):
        """Resident memory the proxy adds for `--idle` idle keep-alive HTTP connections."""
        if pid is None:
            return {"kib_per_connection": None, "rss_mib": None, "errors": ""}
        before = self.rss_kib(pid)
        client = subprocess.Popen(
            ["ip", "netns", "exec", f"{P}-client", "python3", os.path.join(os.path.dirname(__file__), "idle_http_clients.py"),
             SERVER, "8080", str(self.args.idle)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = client.stdout.readline().split()
            ok = int(line[1]) if len(line) == 2 else 0
            time.sleep(2)
            after = self.rss_kib(pid)
        finally:
            client.stdin.close()
            client.wait(timeout=60)
        return {"kib_per_connection": (after - before) / self.args.idle, "rss_mib": after / 1024,
                "errors": "" if ok == self.args.idle else f"idle: {ok}/{self.args.idle} answered"}

    def run_scenario(self, name):
        pid, stop = (None, lambda: None)
        if name == "sluice":
            pid, stop = self.start_sluice()
        elif name == "envoy":
            pid, stop = self.start_envoy()
        try:
            ns("client", "wrk", "-t1", "-c4", "-d1s", f"http://{SERVER}:8080/")  # warm-up
            if self.args.http:
                return {"keepalive": self.wrk(pid, close=False), "http2": self.h2load(pid), "idle": self.idle_connections(pid)}
            return {"keepalive": self.wrk(pid, close=False), "short_connections": self.wrk(pid, close=True), "bulk": self.bulk(pid)}
        finally:
            stop()


METRICS = [
    ("keepalive", "rps", "HTTP keep-alive requests/s", True),
    ("keepalive", "p50_ms", "HTTP keep-alive p50 ms", False),
    ("keepalive", "p99_ms", "HTTP keep-alive p99 ms", False),
    ("keepalive", "cpu_us_per_request", "proxy CPU µs/request (keep-alive)", False),
    ("short_connections", "rps", "new connection per request, requests/s", True),
    ("short_connections", "p50_ms", "new connection per request, p50 ms", False),
    ("short_connections", "p99_ms", "new connection per request, p99 ms", False),
    ("short_connections", "cpu_us_per_request", "proxy CPU µs/request (new connections)", False),
    ("bulk", "gbps", "bulk TCP throughput Gbit/s (iperf3)", True),
    ("bulk", "cpu_s_per_gb", "proxy CPU s/GB (bulk)", False),
]


HTTP_METRICS = [
    ("keepalive", "rps", "HTTP/1.1 keep-alive requests/s (wrk)", True),
    ("keepalive", "p50_ms", "HTTP/1.1 keep-alive p50 ms", False),
    ("keepalive", "p99_ms", "HTTP/1.1 keep-alive p99 ms", False),
    ("keepalive", "cpu_us_per_request", "proxy CPU µs/request (HTTP/1.1)", False),
    ("http2", "rps", "HTTP/2 requests/s (h2load -c4 -m16)", True),
    ("http2", "p50_ms", "HTTP/2 p50 ms (h2load per-request log)", False),
    ("http2", "p99_ms", "HTTP/2 p99 ms (h2load per-request log)", False),
    ("http2", "cpu_us_per_request", "proxy CPU µs/request (HTTP/2)", False),
    ("idle", "kib_per_connection", "resident KiB per idle HTTP connection", False),
    ("idle", "rss_mib", "proxy resident MiB with the idle connections", False),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice", required=True)
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per proxy; the median is reported")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--http", action="store_true",
                        help="HTTP through the connection manager: wrk (HTTP/1.1), h2load (HTTP/2), idle connection memory")
    parser.add_argument("--idle", type=int, default=9000,
                        help="idle HTTP connections for the memory figure (20,000 open files per process here: "
                             "each proxied connection costs the proxy a descriptor)")
    args = parser.parse_args()
    bench = Bench(args)
    results = {"direct": [], "envoy": [], "sluice": []}
    try:
        bench.build()
        order = ["direct"] + ["envoy", "sluice"] * args.rounds
        for name in order:
            print(f"running {name} …", file=sys.stderr, flush=True)
            results[name].append(bench.run_scenario(name))
    finally:
        bench.teardown()

    def median(name, group, key):
        values = [r[group][key] for r in results[name] if r[group][key] is not None]
        return statistics.median(values) if values else None

    print(f"\nSame bootstrap, same namespaces, same iptables capture; proxies pinned to CPU {PROXY_CPU} with one worker,")
    print(f"wrk/nginx/iperf3 on CPU {LOAD_CPU}; wrk -t1 -c{args.connections} -d{args.duration}s; median of {args.rounds} round(s).\n")
    print(f"{'metric':<46}{'direct':>12}{'envoy':>12}{'sluice':>12}{'sluice/envoy':>14}")
    for group, key, label, higher_better in (HTTP_METRICS if args.http else METRICS):
        row = [median(n, group, key) for n in ("direct", "envoy", "sluice")]
        ratio = row[2] / row[1] if row[1] and row[2] is not None else None
        cells = [f"{v:12.3f}" if v is not None else f"{'-':>12}" for v in row]
        print(f"{label:<46}{''.join(cells)}{(f'{ratio:13.2f}x' if ratio else '-'):>14}")
    groups = ("keepalive", "http2", "idle") if args.http else ("keepalive", "short_connections")
    errors = {n: [r[g]["errors"] for r in results[n] for g in groups if r[g]["errors"]] for n in results}
    if any(errors.values()):
        print(f"\nwrk errors: {errors}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
