import Foundation

/// The `sluice` binary and the files and commands a test needs to run it in a topology.
final class SluiceUnderTest: @unchecked Sendable {
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `$SLUICE_BINARY`, else the debug build in this checkout.
    static var binary: String {
        ProcessInfo.processInfo.environment["SLUICE_BINARY"] ?? packageRoot.appendingPathComponent(".build/debug/sluice").path
    }

    static var tcpkit: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tools/tcpkit.py").path
    }

    /// A bootstrap with capture listeners on 15001/15006 relaying to original destinations and
    /// the admin API on 127.0.0.1:15000; with `explicitUpstream`, also a per-workload listener
    /// on 127.0.0.1:15010 relaying there (what an application addresses in the `none` mode).
    static func bootstrap(bufferLimit: Int? = nil, idleTimeout: String? = nil, explicitUpstream: (host: String, port: Int)? = nil) -> String {
        let limit = bufferLimit.map { "\n    per_connection_buffer_limit_bytes: \($0)" } ?? ""
        let idle = idleTimeout.map { "\n          idle_timeout: \($0)" } ?? ""
        func listener(_ name: String, _ port: Int, cluster: String) -> String {
            """
              - name: \(name)
                address: { socket_address: { address: 0.0.0.0, port_value: \(port) } }
                additional_addresses:
                - address: { socket_address: { address: "::", port_value: \(port) } }\(limit)
                use_original_dst: true
                listener_filters:
                - name: envoy.filters.listener.original_dst
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: \(name)
                      cluster: \(cluster)\(idle)
            """
        }
        return """
            admin:
              address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
            static_resources:
              listeners:
            \(listener("outbound", 15001, cluster: "passthrough"))
            \(listener("inbound", 15006, cluster: "inbound_passthrough"))\(explicitUpstream.map { _ in explicitListener } ?? "")
              clusters:
              - name: passthrough
                type: ORIGINAL_DST
                lb_policy: CLUSTER_PROVIDED
                connect_timeout: 2s
              - name: inbound_passthrough
                type: ORIGINAL_DST
                lb_policy: CLUSTER_PROVIDED
                connect_timeout: 2s\(explicitUpstream.map { explicitCluster($0) } ?? "")
            """
    }

    /// A workload listener on 127.0.0.1:15010 relaying to the cluster `explicitCluster` makes.
    private static let explicitListener = """

          - name: explicit
            address: { socket_address: { address: 127.0.0.1, port_value: 15010 } }
            metadata: { filter_metadata: { sluice: { capture: outbound } } }
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                  stat_prefix: explicit
                  cluster: explicit_upstream
        """

    private static func explicitCluster(_ upstream: (host: String, port: Int)) -> String {
        """

          - name: explicit_upstream
            type: STATIC
            connect_timeout: 2s
            load_assignment:
              cluster_name: explicit_upstream
              endpoints:
              - lb_endpoints:
                - endpoint: { address: { socket_address: { address: \(upstream.host), port_value: \(upstream.port) } } }
        """
    }

    let topology: Topology
    /// The namespace the proxy (and agent) run in.
    let node: String
    let socketPath: String
    let stateDirectory: String
    let configPath: String
    private(set) var proxy: BackgroundProcess?
    private(set) var agent: BackgroundProcess?

    init(topology: Topology, config: String = SluiceUnderTest.bootstrap()) throws {
        self.topology = topology
        node = try topology.addNamespace("\(topology.prefix)-node")
        socketPath = topology.directory.appendingPathComponent("agent.sock").path
        stateDirectory = topology.directory.appendingPathComponent("state").path
        configPath = topology.directory.appendingPathComponent("bootstrap.yaml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// `sluice up`: agent and proxy in one process.
    func startUp() throws {
        proxy = try topology.spawn("sluice-up", in: node, [Self.binary, "up", "--config", configPath, "--socket", socketPath])
        try waitReady()
    }

    func startAgent(extra: [String] = []) throws {
        agent = try topology.spawn("sluice-agent", in: node, [
            Self.binary, "agent", "--socket", socketPath, "--state-dir", stateDirectory,
        ] + extra)
        try eventually("agent socket \(socketPath)") { FileManager.default.fileExists(atPath: socketPath) }
    }

    func startProxy(name: String = "sluice-proxy", extra: [String] = []) throws {
        proxy = try topology.spawn(name, in: node, [
            Self.binary, "proxy", "--config", configPath, "--agent-socket", socketPath,
        ] + extra)
        try waitReady()
    }

    func waitReady() throws {
        try eventually("admin /ready") { try admin("/ready").hasPrefix("LIVE") }
    }

    /// GET (or POST) an admin path inside the node namespace.
    @discardableResult
    func admin(_ path: String, method: String = "GET") throws -> String {
        try topology.exec(node, ["curl", "-sS", "--max-time", "5", "-X", method, "http://127.0.0.1:15000\(path)"])
    }

    /// Envoy-format stats as a dictionary.
    func stats() throws -> [String: Int64] {
        var values: [String: Int64] = [:]
        for line in try admin("/stats").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, let value = Int64(parts[1].trimmingCharacters(in: .whitespaces)) {
                values[String(parts[0])] = value
            }
        }
        return values
    }

    func stat(_ name: String) throws -> Int64 { try stats()[name] ?? 0 }

    /// Runs `sluice <arguments> --socket <ours>` and returns its output.
    @discardableResult
    func cli(_ arguments: [String]) throws -> String {
        try Shell.check([Self.binary] + arguments + ["--socket", socketPath])
    }

    func enroll(_ host: Topology.Host, _ extra: [String] = []) throws {
        try cli(["enroll", "--netns", host.namespace] + extra)
    }

    func unenroll(_ host: Topology.Host) throws {
        try cli(["unenroll", "--netns", host.namespace])
    }

    /// Starts the tcpkit server on `port` in `host`, logging connections to a file.
    @discardableResult
    func startServer(on host: Topology.Host, port: Int) throws -> URL {
        let log = topology.directory.appendingPathComponent("server-\(host.namespace)-\(port).jsonl")
        let process = try topology.spawn("server-\(host.namespace)-\(port)", in: host.namespace, [
            "python3", Self.tcpkit, "server", "--port", "\(port)", "--log", log.path,
        ])
        try eventually("server on \(host.namespace):\(port)") { process.log.contains("ready") }
        return log
    }

    /// Runs a tcpkit client in `host`.
    func client(from host: Topology.Host, to target: String, _ command: String, _ extra: [String] = []) throws -> String {
        try topology.exec(host.namespace, ["python3", Self.tcpkit, "client", "--connect", target, "--command", command] + extra)
    }

    /// `iptables-save` and `ip6tables-save` of a namespace's nat tables, without the
    /// timestamped comment lines.
    func natRules(_ host: Topology.Host) throws -> String {
        let saved = try topology.exec(host.namespace, ["iptables-save", "-t", "nat"])
            + topology.exec(host.namespace, ["ip6tables-save", "-t", "nat"])
        return saved.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n")
    }
}
