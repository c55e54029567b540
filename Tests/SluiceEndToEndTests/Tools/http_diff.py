#!/usr/bin/env python3
"""Differential HTTP test: the same route tables and requests through the real Envoy and Sluice.

Each corpus entry holds an HTTP connection manager's route_config (Envoy v3 YAML) and the
requests to send. Every entry becomes one listener of one static bootstrap, run by both proxies
(Envoy's listeners on 20000+i, Sluice's on 30000+i). Upstreams are echo servers (clusters c1..c4
and the failing ones) that answer with JSON naming themselves and listing the request they saw.
For every request the tool compares: status, which upstream answered and how many attempts it
saw, the request headers the upstream saw, and the response headers and local-reply body,
after normalizing values that differ by nature (request ids, timings, dates). A request sent
`repeat` times compares its counted statuses and upstreams, exactly unless it declares a
`tolerance` (the most any count may differ by).

Usage: http_diff.py --envoy BIN --sluice BIN --corpus FILE --workdir DIR --out FILE.json
"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

UPSTREAMS = {"c1": 18001, "c2": 18002, "c3": 18003, "c4": 18004, "flaky": 18005, "broken": 18006}
ATTEMPTS = {}
ATTEMPTS_LOCK = threading.Lock()

# Headers whose values differ between two proxies by nature; only their presence is compared.
PRESENCE_ONLY = {"x-request-id", "x-envoy-upstream-service-time", "date", "x-envoy-expected-rq-timeout-ms"}
# Headers the comparison ignores entirely (connection framing chosen by each codec).
IGNORED = {"content-length", "transfer-encoding", "connection", "keep-alive", "x-case-id", "x-proxy"}


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_name = "?"

    def log_message(self, *args):
        pass

    def handle_one(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        case = self.headers.get("x-case-id", "")
        key = (self.upstream_name, case)
        with ATTEMPTS_LOCK:
            ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
            attempt = ATTEMPTS[key]
        status = 503 if self.upstream_name == "broken" else 200
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        for i, part in enumerate(parts[:-1]):
            if part == "status":
                status = int(parts[i + 1])
            if part == "fail-first" and attempt <= int(parts[i + 1]):
                status = 503
            if part == "reset-first" and attempt <= int(parts[i + 1]):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        payload = json.dumps({
            "upstream": self.upstream_name, "method": self.command, "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()], "body_bytes": len(body), "attempt": attempt,
        }).encode()
        self.send_response(status)
        self.send_header("x-upstream", self.upstream_name)
        self.send_header("content-type", "application/json")
        self.send_header("x-echo-header", "echo")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_one


class EchoServer(ThreadingHTTPServer):
    request_queue_size = 1024


def start_upstreams():
    servers = []
    for name, port in UPSTREAMS.items():
        handler = type(f"Echo_{name}", (Echo,), {"upstream_name": name})
        server = EchoServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def cluster(name, port, extra=None):
    c = {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }
    c.update(extra or {})
    return c


def lb_endpoint(host):
    """An echo upstream by name, or {name, health} for one whose EDS health status is given."""
    name, health = (host, None) if isinstance(host, str) else (host["name"], host.get("health"))
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": UPSTREAMS[name]}}}}
    if health:
        endpoint["health_status"] = health
    return endpoint


def endpoints(name, hosts=None, localities=None, overprovisioning_factor=None):
    """One anonymous locality of `hosts`, or `localities` of {zone, weight, priority, hosts}."""
    groups = []
    for group in localities or [{"hosts": hosts}]:
        entry = {"lb_endpoints": [lb_endpoint(h) for h in group["hosts"]]}
        if "zone" in group:
            entry["locality"] = {"zone": group["zone"]}
        if "weight" in group:
            entry["load_balancing_weight"] = group["weight"]
        if "priority" in group:
            entry["priority"] = group["priority"]
        groups.append(entry)
    assignment = {"cluster_name": name, "endpoints": groups}
    if overprovisioning_factor is not None:
        assignment["policy"] = {"overprovisioning_factor": overprovisioning_factor}
    return assignment


def tallies_match(envoy, sluice, tolerance):
    """Counted outcomes agree when every key's counts differ by at most `tolerance`."""
    if "error" in envoy or "error" in sluice:
        return envoy == sluice
    return all(abs(envoy.get(key, 0) - sluice.get(key, 0)) <= tolerance for key in set(envoy) | set(sluice))


def bootstrap(corpus, base_port, admin_port):
    listeners = []
    extra_clusters = []
    for index, entry in enumerate(corpus):
        hcm = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": f"case{index}", "codec_type": "AUTO",
            "route_config": entry["route_config"],
            "http_filters": entry.get("http_filters", []) + [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        }
        hcm.update(entry.get("hcm", {}))
        for extra in entry.get("clusters", []):
            # Clusters of several echo upstreams: `hosts` names them, or `localities` groups them.
            extra = dict(extra)
            assignment = endpoints(extra["name"], extra.pop("hosts", None), extra.pop("localities", None),
                                   extra.pop("overprovisioning_factor", None))
            extra.setdefault("type", "STATIC")
            extra.setdefault("connect_timeout", "1s")
            extra["load_assignment"] = assignment
            extra_clusters.append(extra)
        listeners.append({
            "name": f"case{index}",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": base_port + index}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        })
    clusters = [cluster(name, port) for name, port in UPSTREAMS.items() if name != "missing-endpoint"]
    clusters.append(cluster("dead", 18099))
    clusters += extra_clusters
    return {
        "node": {"id": "diff", "cluster": "diff"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def send(port, request, case_id):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"x-case-id": case_id}
    headers.update(request.get("headers", {}))
    body = request.get("body", "")
    conn.putrequest(request.get("method", "GET"), request.get("path", "/"), skip_host=True, skip_accept_encoding=True)
    conn.putheader("host", request.get("host", "example.com"))
    for name, value in headers.items():
        for v in (value if isinstance(value, list) else [value]):
            conn.putheader(name, v)
    if body:
        conn.putheader("content-length", str(len(body)))
    conn.endheaders(body.encode() if body else None)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    headers = [[k.lower(), v] for k, v in response.getheaders()]
    return response.status, headers, data


def send_http2(port, request, case_id):
    """The same request over HTTP/2 with prior knowledge (curl, nghttp2): `host` becomes `:authority`."""
    command = ["curl", "-s", "-i", "--http2-prior-knowledge", "--max-time", "10", "-X", request.get("method", "GET"),
               "-H", f"host: {request.get('host', 'example.com')}", "-H", f"x-case-id: {case_id}",
               "-H", "user-agent:", "-H", "accept:"]
    if request.get("method") == "HEAD":
        command[command.index("-X"):command.index("-X") + 2] = ["-I"]
    for name, value in request.get("headers", {}).items():
        for v in (value if isinstance(value, list) else [value]):
            command += ["-H", f"{name}: {v}"]
    if request.get("body"):
        command += ["--data-binary", request["body"]]
    command.append(f"http://127.0.0.1:{port}{request.get('path', '/')}")
    for _ in range(5):
        # A proxy that answered before the request body arrived resets the stream when the
        # body's DATA frame comes in; if that races curl's upload, curl drops the response it
        # had (exit 92). Such a try says nothing about the answer, so it is made again.
        output = subprocess.run(command, capture_output=True, timeout=20).stdout
        if output:
            break
    head, _, data = output.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    if not lines[0].startswith("HTTP/2"):
        raise ConnectionError(lines[0])
    headers = [[k.strip().lower(), v.strip()] for k, _, v in (line.partition(":") for line in lines[1:])]
    return int(lines[0].split()[1]), headers, data


def stats(admin_port):
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    conn.request("GET", "/stats")
    values = {}
    for line in conn.getresponse().read().decode().splitlines():
        name, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            values[name] = int(value)
    return values


def normalize_headers(pairs):
    out = {}
    for name, value in pairs:
        if name in IGNORED:
            continue
        out.setdefault(name, []).append("<present>" if name in PRESENCE_ONLY else value)
    return {k: sorted(v) for k, v in sorted(out.items())}


def outcome(status, headers, data):
    result = {"status": status, "response_headers": normalize_headers(headers)}
    upstream = dict(headers).get("x-upstream")
    if upstream and dict(headers).get("content-type") == "application/json":
        echo = json.loads(data)
        result["upstream"] = echo["upstream"]
        result["attempt"] = echo["attempt"]
        result["upstream_path"] = echo["path"]
        result["upstream_method"] = echo["method"]
        result["upstream_headers"] = normalize_headers(echo["headers"])
        result["body_bytes"] = echo["body_bytes"]
    else:
        result["body"] = data.decode(errors="replace")
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--sluice", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--http2", action="store_true",
                        help="send every single request (not the repeated ones) over HTTP/2 as well")
    args = parser.parse_args()
    with open(args.corpus) as f:
        corpus = yaml.safe_load(f)
    start_upstreams()
    processes = []
    try:
        for label, binary, base, admin in (("envoy", args.envoy, 20000, 19000), ("sluice", args.sluice, 30000, 19001)):
            path = os.path.join(args.workdir, f"diff-{label}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(bootstrap(corpus, base, admin), f)
            log = open(os.path.join(args.workdir, f"diff-{label}.log"), "w")
            if label == "envoy":
                command = [binary, "-c", path, "--concurrency", "1", "--log-level", "warning", "--base-id", str(os.getpid() % 20000 + 1000)]
            else:
                command = [binary, "proxy", "--config", path]
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for base in (20000, 30000):
            if not wait_port(base + len(corpus) - 1):
                print(f"proxy on {base} did not start", file=sys.stderr)
                return 2
        results = []
        for index, entry in enumerate(corpus):
            time.sleep(entry.get("wait", 0))
            requests = entry["requests"]
            if args.http2 and not entry.get("stats"):
                requests = requests + [dict(r, http2=True) for r in requests if "repeat" not in r and not r.get("http2")]
            for number, request in enumerate(requests):
                seen = {}
                for label, base in (("envoy", 20000), ("sluice", 30000)):
                    case_id = f"{label}-{index}-{number}"
                    try:
                        if "repeat" in request:
                            # Several requests in a row: their statuses and upstreams, counted.
                            tally = {}
                            for turn in range(request["repeat"]):
                                got = outcome(*send(base + index, request, f"{case_id}-{turn}"))
                                key = f"{got['status']} {got.get('upstream', '-')}"
                                tally[key] = tally.get(key, 0) + 1
                            seen[label] = tally
                        elif request.get("http2"):
                            seen[label] = outcome(*send_http2(base + index, request, case_id))
                        else:
                            seen[label] = outcome(*send(base + index, request, case_id))
                    except Exception as error:  # a failed exchange is an outcome too
                        seen[label] = {"error": type(error).__name__}
                # A repeated request may declare how far per-upstream counts may differ, where
                # Envoy's own picks are not fully determined (EDF schedules started at random).
                tolerance = request.get("tolerance", 0)
                same = tallies_match(seen["envoy"], seen["sluice"], tolerance) if "repeat" in request else seen["envoy"] == seen["sluice"]
                results.append({
                    "case": f"{entry['name']}#{number}", "request": request,
                    "same": same, "envoy": seen["envoy"], "sluice": seen["sluice"],
                })
            if entry.get("stats"):
                # Counters both proxies keep under Envoy's names (ejections, overflows, retries).
                envoy_stats, sluice_stats = stats(19000), stats(19001)
                observed = {"envoy": {n: envoy_stats.get(n) for n in entry["stats"]},
                            "sluice": {n: sluice_stats.get(n) for n in entry["stats"]}}
                results.append({"case": f"{entry['name']}#stats", "request": {"stats": entry["stats"]},
                                "same": observed["envoy"] == observed["sluice"], **observed})
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        different = [r for r in results if not r["same"]]
        print(f"{len(results)} cases, {len(results) - len(different)} identical, {len(different)} different")
        for r in different[:50]:
            print(f"DIFF {r['case']} {json.dumps(r['request'])}\n  envoy:  {json.dumps(r['envoy'])}\n  sluice: {json.dumps(r['sluice'])}")
        return 0
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
