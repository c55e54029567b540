#!/usr/bin/env python3
"""Self-test for xds_server.py against the real Envoy, in SotW (GRPC) and Delta (DELTA_GRPC) ADS.

    /tmp/venvtest/bin/python xds_server_selftest.py [--envoy PATH] [--mode sotw|delta]

For each mode: start the server and Envoy (loopback only, free ports), push CDS v1 -> EDS v1 ->
LDS v1 (tcp_proxy listener to an in-process echo server) and check the ACKs and traffic; push an
invalid CDS and check the NACK keeps version v1; stop and restart the gRPC server and check Envoy
reconnects presenting its last versions; push a valid CDS v3 and check ACK and traffic again.
Prints Envoy's request sequence per type. Exit status 0 = pass.
"""
import argparse
import json
import os
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "type.googleapis.com/"
CDS = PREFIX + "envoy.config.cluster.v3.Cluster"
EDS = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = PREFIX + "envoy.config.listener.v3.Listener"
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS"}
TIMEOUT = 20.0


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what, predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out waiting for {what}")
        time.sleep(0.05)


class Control:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as error:
            raise Failure(f"{method} {path} -> {error.code} {error.read().decode()}")

    def push(self, kind, version, resources):
        return self.call("POST", "/resources",
                         {"type": kind, "version": version, "resources": resources})

    def requests(self, type_url=None):
        return [r for r in self.call("GET", "/requests") if type_url in (None, r["type"])]

    def responses(self, type_url):
        return [r for r in self.call("GET", "/responses") if r["type"] == type_url]


# --- resources ----------------------------------------------------------------------------------

def cluster(timeout="1s"):
    return {"@type": CDS, "name": "c1", "type": "EDS", "connect_timeout": timeout,
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}


def socket_address(port):
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def load_assignment(name, port):
    """Without "@type": usable both in the bootstrap and (type implied) in an EDS push."""
    return {"cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(port)}}]}]}


def listener(port):
    tcp_proxy = {"@type": PREFIX + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                 "stat_prefix": "l1", "cluster": "c1"}
    return {"@type": LDS, "name": "l1", "address": socket_address(port),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                            "typed_config": tcp_proxy}]}]}


def bootstrap(mode, grpc_port, admin_port):
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    h2 = {"@type": PREFIX + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
          "explicit_http_config": {"http2_protocol_options": {}}}
    return {
        "node": {"id": f"selftest-{mode}", "cluster": "selftest"},
        "admin": {"address": socket_address(admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC" if mode == "sotw" else "DELTA_GRPC",
                "transport_api_version": "V3",
                # Fast reconnect after /stop + /start (default backoff starts at 500 ms).
                "grpc_services": [{"envoy_grpc": {
                    "cluster_name": "xds",
                    "retry_policy": {"retry_back_off": {"base_interval": "0.1s",
                                                        "max_interval": "1s"}}}}]},
            "lds_config": ads_source,
            "cds_config": ads_source,
        },
        "static_resources": {"clusters": [{
            "name": "xds", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
            "load_assignment": load_assignment("xds", grpc_port),
        }]},
    }


# --- processes ------------------------------------------------------------------------------

def start_server(grpc_port, control_port, log_path):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "xds_server.py"), "--grpc", f"127.0.0.1:{grpc_port}",
         "--control", f"127.0.0.1:{control_port}", "--log", log_path],
        stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
    line = proc.stdout.readline().strip() if ready else ""
    if line != "ready":
        stop_process(proc)
        raise Failure(f"server did not print ready (got {line!r})")
    return proc


def stop_process(proc):
    """Terminate by PID, escalate to SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_echo():
    """Upstream for the tcp_proxy listener: echoes each connection."""
    listener_sock = socket.socket()
    listener_sock.bind(("127.0.0.1", 0))
    listener_sock.listen()

    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept():
        while True:
            try:
                conn, _ = listener_sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener_sock


def check_traffic(port):
    """Envoy binds the listener shortly after ACKing it; retry until the echo comes back."""
    def attempt():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(b"ping\n")
                return conn.recv(16) == b"ping\n"
        except OSError:
            return False
    wait_for(f"echo through listener 127.0.0.1:{port}", attempt)


# --- protocol checks ------------------------------------------------------------------------

def reply_to(ctl, type_url, version, stream=None):
    """The client's request answering our latest response of this type and version."""
    def find():
        sent = [r for r in ctl.responses(type_url)
                if r["version"] == version and stream in (None, r["stream"])]
        if not sent:
            return None
        last = sent[-1]
        return next((r for r in ctl.requests(type_url)
                     if r["stream"] == last["stream"] and r["response_nonce"] == last["nonce"]),
                    None)
    return wait_for(f"reply to {SHORT[type_url]} {version}", find)


def expect_ack(ctl, mode, type_url, version):
    req = reply_to(ctl, type_url, version)
    if req["error"] is not None:
        raise Failure(f"{SHORT[type_url]} {version} NACKed: {req['error']}")
    if mode == "sotw" and req["version_info"] != version:
        raise Failure(f"{SHORT[type_url]} ACK carries version {req['version_info']!r}")
    return req


def expect_nack(ctl, mode, type_url, version, good_version, stream=None):
    req = reply_to(ctl, type_url, version, stream)
    if req["error"] is None:
        raise Failure(f"{SHORT[type_url]} {version} was ACKed, expected NACK")
    if mode == "sotw" and req["version_info"] != good_version:
        raise Failure(f"NACK version_info {req['version_info']!r}, expected {good_version!r}")
    return req


def first_request(ctl, type_url, after_stream):
    """First request of a type on a stream opened after `after_stream`."""
    return wait_for(f"{SHORT[type_url]} request on a new stream", lambda: next(
        (r for r in ctl.requests(type_url) if r["stream"] > after_stream), None))


def check_reconnect(ctl, mode, old_stream, expected):
    for type_url, (name, version) in expected.items():
        req = first_request(ctl, type_url, old_stream)
        if mode == "sotw":
            ok = req["version_info"] == version
        else:
            ok = req["initial_resource_versions"] == {name: version}
        if not ok:
            raise Failure(f"reconnect {SHORT[type_url]} request does not carry last version "
                          f"{version}: {req}")


def describe(req):
    fields = []
    for key, label in (("version_info", "version_info"), ("resource_names", "names"),
                       ("subscribe", "subscribe"), ("unsubscribe", "unsubscribe"),
                       ("initial_resource_versions", "initial"),
                       ("response_nonce", "nonce")):
        if req[key]:
            fields.append(f"{label}:{json.dumps(req[key], separators=(',', ':'))}")
    if req["node_id"] is not None:
        fields.append("node")
    if req["error"] is not None:
        # protobuf's debug text inserts random whitespace on purpose; collapse it
        fields.append(f"error:{json.dumps(' '.join(req['error'].split())[:90])}")
    return f"stream {req['stream']} {{{', '.join(fields)}}}"


def print_sequences(ctl, mode):
    requests = ctl.requests()
    print(f"== {mode}: Envoy requests per type ==")
    for type_url in (CDS, EDS, LDS):
        print(f"  {SHORT[type_url]}")
        for req in requests:
            if req["type"] == type_url:
                print(f"    #{req['seq']:<3} {describe(req)}")


# --- scenario -------------------------------------------------------------------------------

def scenario(ctl, mode, echo_port, listen_port):
    # Initial configuration, each push answering the type's first request.
    first_request(ctl, CDS, 0)
    ctl.push("cds", "v1", [cluster()])
    expect_ack(ctl, mode, CDS, "v1")
    first_request(ctl, EDS, 0)
    ctl.push("eds", "v1", [load_assignment("c1", echo_port)])
    expect_ack(ctl, mode, EDS, "v1")
    first_request(ctl, LDS, 0)
    ctl.push("lds", "v1", [listener(listen_port)])
    expect_ack(ctl, mode, LDS, "v1")
    check_traffic(listen_port)

    # Invalid cluster: NACK, Envoy keeps v1.
    ctl.push("cds", "v2-bad", [cluster(timeout="-1s")])
    expect_nack(ctl, mode, CDS, "v2-bad", "v1")
    check_traffic(listen_port)

    # Control-plane restart: Envoy reconnects and presents what it holds.
    old_stream = max(r["stream"] for r in ctl.requests())
    ctl.call("POST", "/stop")
    wait_for("streams to close", lambda: ctl.call("GET", "/streams")["open"] == 0)
    time.sleep(0.3)
    ctl.call("POST", "/start")
    check_reconnect(ctl, mode, old_stream, {CDS: ("c1", "v1"), EDS: ("c1", "v1"),
                                            LDS: ("l1", "v1")})
    new_stream = old_stream + 1
    # The stored CDS is still the invalid one, so the new stream gets it and NACKs it again.
    expect_nack(ctl, mode, CDS, "v2-bad", "v1", stream=new_stream)
    ctl.push("cds", "v3", [cluster()])
    expect_ack(ctl, mode, CDS, "v3")
    check_traffic(listen_port)


def run_mode(mode, envoy, workdir):
    grpc_port, control_port, admin_port, listen_port = (free_port() for _ in range(4))
    server_log = os.path.join(workdir, f"xds-{mode}.jsonl")
    envoy_log = os.path.join(workdir, f"envoy-{mode}.log")
    config_path = os.path.join(workdir, f"bootstrap-{mode}.json")
    with open(config_path, "w") as out:
        json.dump(bootstrap(mode, grpc_port, admin_port), out, indent=1)

    echo = start_echo()
    server = envoy_proc = None
    try:
        server = start_server(grpc_port, control_port, server_log)
        ctl = Control(control_port)
        with open(envoy_log, "w") as log:
            envoy_proc = subprocess.Popen(
                [envoy, "-c", config_path, "--concurrency", "1",
                 "--base-id", str(random.randint(1000, 60000)), "--log-level", "info"],
                stdout=log, stderr=subprocess.STDOUT)
        scenario(ctl, mode, echo.getsockname()[1], listen_port)
        print_sequences(ctl, mode)
        print(f"== {mode}: PASS ==")
        return True
    except Failure as failure:
        print(f"== {mode}: FAIL: {failure} ==")
        try:
            print_sequences(ctl, mode)
        except Exception:
            pass
        for path in (envoy_log, server_log):
            if os.path.exists(path):
                print(f"--- tail of {path} ---")
                with open(path) as f:
                    print("".join(f.readlines()[-40:]))
        return False
    finally:
        stop_process(envoy_proc)
        stop_process(server)
        echo.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--envoy", default=os.environ.get("ENVOY", "/tmp/venvtest/bin/envoy"))
    parser.add_argument("--mode", choices=["sotw", "delta"], action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xds-selftest-") as workdir:
        results = [run_mode(mode, args.envoy, workdir) for mode in args.mode or ["sotw", "delta"]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
