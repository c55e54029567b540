#!/usr/bin/env python3
"""Resident memory per enrolled workload: per-workload xDS (one ADS stream and configuration per
workload) against one shared configuration. Run through `Scripts/bench --workload-memory`.

Creates its own namespaces (slm<pid>-*), runs the xDS test server, `sluice agent` and `sluice proxy`
in one of them, enrolls N workloads, and prints the proxy's RSS growth per workload. Removes
everything it created at the end.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

P = f"slm{os.getpid()}"


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def remove_namespaces():
    """Only this run's namespaces: the prefix carries our PID."""
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0]
        if name.startswith(P + "-"):
            subprocess.run(["ip", "netns", "del", name], check=False)


def bootstrap(path):
    with open(path, "w") as f:
        f.write("""admin: { address: { socket_address: { address: 127.0.0.1, port_value: 15000 } } }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
  lds_config: { ads: {}, resource_api_version: V3 }
  cds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 18000 } } } }] }]
""")


def resources(clusters):
    cds = [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": f"svc-{i}", "type": "STATIC",
            "connect_timeout": "1s", "load_assignment": {"cluster_name": f"svc-{i}", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": f"10.1.{i % 250}.{j + 1}", "port_value": 8080}}}}
                for j in range(10)]}]}} for i in range(clusters)]
    lds = [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "virtualOutbound",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
            "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "outbound", "cluster": "svc-0"}}]}]}]
    return cds, lds


def run(args, per_workload):
    work = tempfile.mkdtemp(prefix="sluice-memory.")
    processes = []
    node = f"{P}-node"
    try:
        sh("ip", "netns", "add", node)
        sh("ip", "-n", node, "link", "set", "lo", "up")
        server = subprocess.Popen(["ip", "netns", "exec", node, args.python, args.server, "--grpc", "127.0.0.1:18000",
                                   "--control", "127.0.0.1:18001"], stdout=subprocess.PIPE, text=True)
        processes.append(server)
        server.stdout.readline()
        bootstrap(f"{work}/bootstrap.yaml")
        processes.append(subprocess.Popen(
            ["ip", "netns", "exec", node, args.sluice, "agent", "--socket", f"{work}/agent.sock", "--state-dir", f"{work}/state"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)
        proxy = subprocess.Popen(
            ["ip", "netns", "exec", node, args.sluice, "proxy", "--config", f"{work}/bootstrap.yaml", "--agent-socket",
             f"{work}/agent.sock", "--log-level", "warning"] + (["--xds-per-workload"] if per_workload else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(proxy)
        cds, lds = resources(args.clusters)

        def push(node_id):
            for kind, items in (("cds", cds), ("lds", lds)):
                body = {"type": kind, "version": "v1", "resources": items}
                if node_id:
                    body["node"] = node_id
                path = f"{work}/push.json"
                with open(path, "w") as f:
                    json.dump(body, f)
                sh("ip", "netns", "exec", node, "curl", "-sS", "-X", "POST", "http://127.0.0.1:18001/resources",
                   "-H", "Content-Type: application/json", "--data-binary", f"@{path}")

        if not per_workload:
            push(None)
        time.sleep(2)

        def rss():
            with open(f"/proc/{proxy.pid}/status") as f:
                return int(next(line for line in f if line.startswith("VmRSS")).split()[1])

        base = rss()
        for index in range(args.workloads):
            name = f"{P}-w{index}"
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
            sh("ip", "-n", name, "addr", "add", f"10.50.{index}.2/24", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")
            if per_workload:
                push(f"sidecar~10.50.{index}.2~{name}.default~default.svc.cluster.local")
            sh(args.sluice, "enroll", "--netns", name, "--socket", f"{work}/agent.sock")
        time.sleep(3)
        return base, rss()
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        remove_namespaces()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--workloads", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=50)
    args = parser.parse_args()
    print(f"{args.workloads} workloads, {args.clusters} clusters x 10 endpoints and one capture listener per configuration")
    for per_workload in (True, False):
        base, after = run(args, per_workload)
        label = "per-workload xDS (one stream each)" if per_workload else "one shared configuration"
        print(f"{label:<38} RSS {base} KiB -> {after} KiB: {(after - base) / args.workloads:.0f} KiB per workload")


if __name__ == "__main__":
    main()
