import Foundation
import SluiceInterception
import SluiceModel
import SluiceNode

/// Everything `compare-modes` measured.
struct ComparisonReport: Codable {
    struct Row: Codable {
        var path: String
        var keepAlive: LoadFigures?
        var newConnections: LoadFigures?
        var bulk: BulkFigures?
        var installMilliseconds: Double?
        var removeMilliseconds: Double?
        var failure: String?
    }

    struct Scaling: Codable {
        var mode: String
        /// Workload count → milliseconds to enroll (install) and unenroll (remove) them all.
        var install: [Int: Double]
        var remove: [Int: Double]
        var failure: String?
    }

    var kernel: String
    var duration: Int
    var connections: Int
    /// `envoy --version` of the Envoy measured as a sidecar, nil when it was skipped.
    var envoyVersion: String?
    /// Why Envoy was not measured, nil when it was.
    var envoySkipped: String?
    var rows: [Row]
    var scaling: [Scaling]

    /// The row of the real Envoy run as a sidecar behind iptables capture.
    static let envoyPath = "envoy (iptables)"

    /// The Envoy row, when Envoy was measured and did not fail.
    var envoyRow: Row? { rows.first { $0.path == Self.envoyPath && $0.failure == nil } }
}

/// Drives the comparison: nginx and iperf3 in the server namespace, the agent and a one-worker
/// proxy in the node namespace (proxy on CPU 1, load on CPU 0), then each path in turn. With
/// an Envoy binary, the real Envoy is measured too, as a sidecar in the client namespace with
/// the same bootstrap and the rules of the iptables mode (the way `Scripts/bench` runs it).
struct ModeComparison {
    let topology: ComparisonTopology
    let duration: Int
    let connections: Int
    /// The Envoy binary, or why Envoy is not measured.
    let envoy: Result<String, CompareError>
    private let socketPath: String
    private let proxyPID: Int32
    private let bootstrapPath: String

    init(topology: ComparisonTopology, duration: Int, connections: Int, envoy: Result<String, CompareError>) throws {
        self.topology = topology
        self.duration = duration
        self.connections = connections
        self.envoy = envoy
        let socketPath = topology.directory.appendingPathComponent("agent.sock").path
        self.socketPath = socketPath
        let nginx = topology.directory.appendingPathComponent("nginx.conf").path
        try """
            daemon off; worker_processes 1; pid \(topology.directory.path)/nginx.pid; error_log \(topology.directory.path)/nginx.err;
            events { worker_connections 4096; }
            http { access_log off; keepalive_requests 1000000;
              server { listen 8080 reuseport; location / { default_type text/plain; return 200 "\(String(repeating: "x", count: 64))"; } } }
            """.write(toFile: nginx, atomically: true, encoding: .utf8)
        try topology.spawn("nginx", in: topology.server, cpu: LoadRun.loadCPU, ["nginx", "-c", nginx])
        try topology.spawn("iperf3", in: topology.server, cpu: LoadRun.loadCPU, ["iperf3", "-s", "-p", "5201"])
        let bootstrap = topology.directory.appendingPathComponent("bootstrap.yaml").path
        try Self.bootstrap.write(toFile: bootstrap, atomically: true, encoding: .utf8)
        bootstrapPath = bootstrap
        let binary = CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0] : (CommandRunner.locate(CommandLine.arguments[0]) ?? CommandLine.arguments[0])
        try topology.spawn("agent", in: topology.node, cpu: nil, [
            binary, "agent", "--socket", socketPath, "--state-dir", topology.directory.appendingPathComponent("state").path,
        ])
        try Self.waitFor("the agent socket") { FileManager.default.fileExists(atPath: socketPath) }
        let proxy = try topology.spawn("proxy", in: topology.node, cpu: 1, [
            binary, "proxy", "--config", bootstrap, "--agent-socket", socketPath, "--workers", "1", "--log-level", "warning",
        ])
        proxyPID = proxy.processIdentifier
        try Self.waitFor("the proxy's admin /ready") {
            (try? topology.exec(topology.node, ["curl", "-s", "http://127.0.0.1:15000/ready"]))?.hasPrefix("LIVE") == true
        }
        try Self.waitFor("nginx in the server namespace") {
            (try? topology.exec(topology.client, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                                  "http://\(ComparisonTopology.serverAddress):8080/"])) == "200"
        }
    }

    func run(modes: [CaptureModeName], workloadCounts: [Int]) -> ComparisonReport {
        var rows = [measure(path: "direct", mode: nil)]
        var envoyVersion: String?, envoySkipped: String?
        switch envoy {
        case .success(let binary):
            envoyVersion = Self.envoyVersion(binary)
            rows.append(measureEnvoy(binary))
        case .failure(let reason):
            envoySkipped = reason.description
        }
        for mode in modes { rows.append(measure(path: mode.rawValue, mode: mode)) }
        let scaling = modes.map { scale($0, counts: workloadCounts) }
        let kernel = (try? CommandRunner.check(["uname", "-r"]))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        return ComparisonReport(
            kernel: kernel, duration: duration, connections: connections, envoyVersion: envoyVersion, envoySkipped: envoySkipped,
            rows: rows, scaling: scaling)
    }

    private func measure(path: String, mode: CaptureModeName?) -> ComparisonReport.Row {
        var row = ComparisonReport.Row(path: path)
        do {
            let clientNetns = "/run/netns/\(topology.client)"
            if let mode {
                row.installMilliseconds = try Self.milliseconds { try enroll(clientNetns, mode) }
            }
            // `none` has nothing to capture the server's address: the application addresses the
            // proxy's per-workload listeners instead.
            let explicit = mode == CaptureModeName.none
            let host = explicit ? "127.0.0.1" : ComparisonTopology.serverAddress
            let url = "http://\(host):\(explicit ? 15010 : 8080)/"
            try load(into: &row, url: url, bulkHost: host, bulkPort: explicit ? 15011 : 5201, proxyPID: mode == nil ? nil : proxyPID)
            if mode != nil {
                row.removeMilliseconds = try Self.milliseconds { try unenroll(clientNetns) }
            }
        } catch {
            row.failure = "\(error)"
            if mode != nil { try? unenroll("/run/netns/\(topology.client)") }
        }
        return row
    }

    /// The real Envoy as a sidecar in the client namespace (one worker, pinned like Sluice's proxy),
    /// with the same bootstrap and the iptables mode's rules installed directly (no agent): its
    /// upstream sockets carry the proxy mark through `upstream_bind_config`, so they are not
    /// captured again. No install or remove time: a sidecar's rules are not an enrollment.
    private func measureEnvoy(_ binary: String) -> ComparisonReport.Row {
        var row = ComparisonReport.Row(path: ComparisonReport.envoyPath)
        let target = CaptureTarget(netnsPath: "/run/netns/\(topology.client)")
        let rules = CaptureModes.make(.iptables)
        var envoyProcess: Process?
        do {
            try rules.install(target)
            // Not in the client's cgroup: Envoy is the proxy here, not the application.
            let process = try topology.spawn("envoy", in: topology.client, cpu: 1, joinsClientCgroup: false, [
                binary, "-c", bootstrapPath, "--concurrency", "1", "--log-level", "warning", "--disable-hot-restart",
            ])
            envoyProcess = process
            try Self.waitFor("Envoy's admin /ready in the client namespace", timeout: 60) {
                guard process.isRunning else { return false }
                return (try? topology.exec(topology.client, ["curl", "-s", "http://127.0.0.1:15000/ready"]))?.hasPrefix("LIVE") == true
            }
            try load(
                into: &row, url: "http://\(ComparisonTopology.serverAddress):8080/", bulkHost: ComparisonTopology.serverAddress,
                bulkPort: 5201, proxyPID: process.processIdentifier)
            topology.stop(process)
            try rules.remove(target)
        } catch {
            row.failure = "\(error)"
            if let envoyProcess { topology.stop(envoyProcess) }
            try? rules.remove(target)
        }
        return row
    }

    /// `1.40.0` from `envoy --version` (`…  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`).
    private static func envoyVersion(_ binary: String) -> String? {
        guard let output = try? CommandRunner.check([binary, "--version"]),
              let range = output.range(of: "version:") else { return nil }
        let fields = output[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "/")
        return fields.count > 1 ? String(fields[1]) : fields.first.map(String.init)
    }

    /// The three load runs (after a warm-up) through one path.
    private func load(into row: inout ComparisonReport.Row, url: String, bulkHost: String, bulkPort: Int, proxyPID: Int32?) throws {
        let load = LoadRun(topology: topology, duration: duration, connections: connections, proxyPID: proxyPID)
        _ = try topology.exec(topology.client, ["wrk", "-t1", "-c4", "-d1s", url])  // warm-up
        row.keepAlive = try load.requests(url: url, newConnections: false)
        row.newConnections = try load.requests(url: url, newConnections: true)
        row.bulk = try load.bulk(host: bulkHost, port: bulkPort)
    }

    /// Enrolls `count` fresh namespaces one after the other, then unenrolls them, timing both.
    private func scale(_ mode: CaptureModeName, counts: [Int]) -> ComparisonReport.Scaling {
        var result = ComparisonReport.Scaling(mode: mode.rawValue, install: [:], remove: [:])
        for count in counts {
            var created: [String] = []
            defer { for name in created { topology.removeNamespace(name) } }
            do {
                for index in 0..<count { created.append(try topology.addNamespace("s\(mode.rawValue.prefix(3))\(count)x\(index)")) }
                let paths = created.map { "/run/netns/\($0)" }
                result.install[count] = try Self.milliseconds { for path in paths { try enroll(path, mode) } }
                result.remove[count] = try Self.milliseconds { for path in paths { try unenroll(path) } }
            } catch {
                result.failure = "\(count) workloads: \(error)"
                for name in created { try? unenroll("/run/netns/\(name)") }
                break
            }
        }
        return result
    }

    private func enroll(_ netnsPath: String, _ mode: CaptureModeName) throws {
        // The ebpf mode captures the client's cgroup; the scaling workloads get one from the agent.
        let cgroup = mode == .ebpf && netnsPath.hasSuffix("/\(topology.client)") ? topology.clientCgroup : nil
        let result = try AgentControlClient.send(
            .enroll(EnrollRequest(netnsPath: netnsPath, mode: mode, options: CaptureOptions(cgroup: cgroup))), socketPath: socketPath)
        if let error = result.error { throw CompareError("enroll \(netnsPath) in \(mode.rawValue) mode: \(error)") }
        if let state = result.workloads.first?.state, state != .captured {
            throw CompareError("enroll \(netnsPath) in \(mode.rawValue) mode: \(state)")
        }
    }

    private func unenroll(_ netnsPath: String) throws {
        let result = try AgentControlClient.send(.unenroll(UnenrollRequest(workload: netnsPath)), socketPath: socketPath)
        if let error = result.error { throw CompareError("unenroll \(netnsPath): \(error)") }
    }

    private static func milliseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    private static func waitFor(_ what: String, timeout: TimeInterval = 30, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return }
            usleep(100_000)
        }
        throw CompareError("timed out waiting for \(what)")
    }

    /// Capture listeners relaying to original destinations, plus the listeners a `none`-mode
    /// application addresses: 127.0.0.1:15010 → nginx, 127.0.0.1:15011 → iperf3. Sluice and
    /// Envoy both start from it; the passthrough clusters' `upstream_bind_config` puts the proxy
    /// mark (SO_MARK, 0x539) on Envoy's upstream sockets so the capture rules skip them (Sluice
    /// marks its sockets anyway).
    static var bootstrap: String {
        func explicit(_ name: String, _ port: Int, upstreamPort: Int) -> (listener: String, cluster: String) {
            ("""
              - name: \(name)
                address: { socket_address: { address: 127.0.0.1, port_value: \(port) } }
                metadata: { filter_metadata: { sluice: { capture: outbound } } }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: \(name), cluster: \(name) }
            """, """
              - name: \(name)
                type: STATIC
                connect_timeout: 2s
                load_assignment:
                  cluster_name: \(name)
                  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: \(ComparisonTopology.serverAddress), port_value: \(upstreamPort) } } } }] }]
            """)
        }
        func capture(_ name: String, _ port: Int, cluster: String) -> String {
            """
              - name: \(name)
                address: { socket_address: { address: 0.0.0.0, port_value: \(port) } }
                use_original_dst: true
                listener_filters:
                - name: envoy.filters.listener.original_dst
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: \(name), cluster: \(cluster) }
            """
        }
        let markedUpstream = "upstream_bind_config: { socket_options: [{ level: 1, name: 36, int_value: \(CaptureDefaults.proxyMark), state: STATE_PREBIND }] }"
        let web = explicit("explicit_web", 15010, upstreamPort: 8080), bulk = explicit("explicit_bulk", 15011, upstreamPort: 5201)
        return """
            admin:
              address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
            static_resources:
              listeners:
            \(capture("outbound", 15001, cluster: "passthrough"))
            \(capture("inbound", 15006, cluster: "inbound_passthrough"))
            \(web.listener)
            \(bulk.listener)
              clusters:
              - { name: passthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 2s, \(markedUpstream) }
              - { name: inbound_passthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 2s, \(markedUpstream) }
            \(web.cluster)
            \(bulk.cluster)
            """
    }
}
