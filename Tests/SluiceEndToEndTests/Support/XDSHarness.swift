import Foundation

/// Runs one proxy (Sluice or the real Envoy) against the Python xDS management server inside a
/// namespace of its own (everything on its loopback), drives pushes through the server's control
/// API, and records what the proxy requested and how traffic behaved.
final class XDSHarness: @unchecked Sendable {
    enum Proxy: String {
        case envoy, sluice
    }

    enum Mode: String {
        case sotw = "GRPC"
        case delta = "DELTA_GRPC"
    }

    /// One request as the comparison sees it.
    struct Request: Equatable, CustomStringConvertible {
        var type: String
        var version: String
        var nonce: String
        var nack: Bool
        var names: [String]
        var subscribe: [String]
        var unsubscribe: [String]
        var hasNode: Bool

        var description: String {
            var parts = ["v=\(version)", "nonce=\(nonce)"]
            if nack { parts.append("NACK") }
            if !names.isEmpty { parts.append("names=\(names)") }
            if !subscribe.isEmpty { parts.append("+\(subscribe)") }
            if !unsubscribe.isEmpty { parts.append("-\(unsubscribe)") }
            if hasNode { parts.append("node") }
            return "\(type){\(parts.joined(separator: " "))}"
        }
    }

    static let grpcPort = 18000
    static let controlPort = 18001
    static let typePrefix = "type.googleapis.com/"

    static var python: String { ProcessInfo.processInfo.environment["SLUICE_PYTHON"] ?? "python3" }
    static var envoy: String? { ProcessInfo.processInfo.environment["SLUICE_ENVOY"] }
    static var server: String {
        URL(fileURLWithPath: SluiceUnderTest.tcpkit).deletingLastPathComponent().appendingPathComponent("xds_server.py").path
    }

    let topology: Topology
    let namespace: String
    let proxy: Proxy
    let mode: Mode
    private(set) var outcomes: [String] = []
    private var serverProcess: BackgroundProcess?

    init(topology: Topology, proxy: Proxy, mode: Mode) throws {
        self.topology = topology
        self.proxy = proxy
        self.mode = mode
        namespace = try topology.addNamespace("\(topology.prefix)-\(proxy.rawValue)-\(mode == .sotw ? "sotw" : "delta")")
        let log = topology.directory.appendingPathComponent("xds-\(proxy.rawValue).jsonl").path
        serverProcess = try topology.spawn("xds-server-\(proxy.rawValue)", in: namespace, [
            Self.python, Self.server, "--grpc", "127.0.0.1:\(Self.grpcPort)", "--control", "127.0.0.1:\(Self.controlPort)",
            "--log", log,
        ])
        try eventually("xds server ready", timeout: 30) { self.serverProcess?.log.contains("ready") == true }
        for port in [9101, 9102] {
            let process = try topology.spawn("echo-\(proxy.rawValue)-\(port)", in: namespace, [
                "python3", SluiceUnderTest.tcpkit, "server", "--host", "127.0.0.1", "--port", "\(port)",
            ])
            try eventually("echo server \(port)") { process.log.contains("ready") }
        }
    }

    /// Starts the proxy under test with the shared dynamic bootstrap.
    func startProxy() throws {
        let path = topology.directory.appendingPathComponent("xds-bootstrap-\(proxy.rawValue).yaml").path
        try bootstrap.write(toFile: path, atomically: true, encoding: .utf8)
        switch proxy {
        case .sluice:
            try topology.spawn("sluice-xds", in: namespace, [SluiceUnderTest.binary, "proxy", "--config", path])
        case .envoy:
            guard let envoy = Self.envoy else { throw ShellError("SLUICE_ENVOY is not set") }
            try topology.spawn("envoy-xds", in: namespace, [
                envoy, "-c", path, "--concurrency", "1", "--log-level", "warning",
                "--base-id", "\(Int(getpid()) % 20000 + 20000)",
            ])
        }
    }

    var bootstrap: String {
        """
        node: { id: "sidecar~10.0.0.1~app.default~default.svc.cluster.local", cluster: app }
        admin:
          address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
        dynamic_resources:
          ads_config:
            api_type: \(mode.rawValue)
            transport_api_version: V3
            set_node_on_first_message_only: true
            grpc_services:
            - envoy_grpc:
                cluster_name: xds
                retry_policy: { retry_back_off: { base_interval: 0.1s, max_interval: 1s } }
          lds_config: { ads: {}, resource_api_version: V3 }
          cds_config: { ads: {}, resource_api_version: V3 }
        static_resources:
          clusters:
          - name: xds
            type: STATIC
            connect_timeout: 1s
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                explicit_http_config: { http2_protocol_options: {} }
            load_assignment:
              cluster_name: xds
              endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(Self.grpcPort) } } } }] }]
        """
    }

    // MARK: A node proxy on the management server

    /// A node proxy's bootstrap: admin on 15000, LDS and CDS over SotW ADS from 127.0.0.1:18000.
    static let nodeBootstrap = """
        admin:
          address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
        dynamic_resources:
          ads_config:
            api_type: GRPC
            transport_api_version: V3
            set_node_on_first_message_only: true
            grpc_services:
            - envoy_grpc: { cluster_name: xds, retry_policy: { retry_back_off: { base_interval: 0.1s, max_interval: 1s } } }
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
        """

    /// Starts the management server of `nodeBootstrap` (gRPC 18000, control 18001) in `namespace`.
    static func startNodeControlPlane(_ topology: Topology, in namespace: String, readyTimeout: TimeInterval = 30) throws -> BackgroundProcess {
        let server = try topology.spawn("xds-server", in: namespace, [
            python, Self.server, "--grpc", "127.0.0.1:18000", "--control", "127.0.0.1:18001",
        ])
        try eventually("xds server ready", timeout: readyTimeout) { server.log.contains("ready") }
        return server
    }

    /// Pushes resources through that server's control API, for every node or only `node`.
    static func push(
        _ topology: Topology, in namespace: String, _ type: String, _ version: String, _ resources: [String], node: String? = nil
    ) throws {
        let target = node.map { ", \"node\": \"\($0)\"" } ?? ""
        let body = "{\"type\": \"\(type)\"\(target), \"version\": \"\(version)\", \"resources\": [\(resources.joined(separator: ","))]}"
        let reply = try topology.exec(namespace, [
            "curl", "-sS", "-X", "POST", "http://127.0.0.1:18001/resources", "-H", "Content-Type: application/json", "--data-binary", body,
        ])
        guard !reply.contains("error") else { throw ShellError("control plane refused a \(type) push: \(reply)") }
    }

    // MARK: Resources (proto3 JSON)

    static func cluster(_ name: String, connectTimeout: String = "1s") -> String {
        """
        {"@type": "\(typePrefix)envoy.config.cluster.v3.Cluster", "name": "\(name)", "type": "EDS", "connect_timeout": "\(connectTimeout)",
         "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}
        """
    }

    static func assignment(_ name: String, port: Int) -> String {
        """
        {"@type": "\(typePrefix)envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": "\(name)",
         "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": \(port)}}}}]}]}
        """
    }

    static func listener(_ name: String, port: Int, cluster: String, statPrefix: String? = nil, idleTimeout: String = "3600s") -> String {
        """
        {"@type": "\(typePrefix)envoy.config.listener.v3.Listener", "name": "\(name)",
         "address": {"socket_address": {"address": "127.0.0.1", "port_value": \(port)}},
         "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
           "@type": "\(typePrefix)envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
           "stat_prefix": "\(statPrefix ?? name)", "cluster": "\(cluster)", "idle_timeout": "\(idleTimeout)"}}]}]}
        """
    }

    // MARK: Control API

    @discardableResult
    func control(_ method: String, _ path: String, _ body: String? = nil) throws -> String {
        var arguments = ["curl", "-sS", "--max-time", "60", "-X", method, "http://127.0.0.1:\(Self.controlPort)\(path)"]
        if let body {
            // Through a file: large pushes exceed the argument-size limit.
            let file = topology.directory.appendingPathComponent("push-\(UUID().uuidString).json")
            try body.write(to: file, atomically: false, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            arguments += ["-H", "Content-Type: application/json", "--data-binary", "@\(file.path)"]
            return try topology.exec(namespace, arguments)
        }
        return try topology.exec(namespace, arguments)
    }

    func push(_ type: String, _ version: String, _ resources: [String], raw: Bool = false) throws {
        let body = "{\"type\": \"\(type)\", \"version\": \"\(version)\", \"resources\": [\(resources.joined(separator: ","))]}"
        let reply = try control("POST", raw ? "/raw" : "/resources", body)
        guard !reply.contains("\"error\"") else { throw ShellError("push \(type) \(version) refused: \(reply)") }
    }

    /// Every request the proxy made, in order.
    func requests() throws -> [Request] {
        let data = Data(try control("GET", "/requests").utf8)
        guard let entries = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [] }
        return entries.map { entry in
            Request(
                type: Self.shortType(entry["type"] as? String ?? ""),
                version: entry["version_info"] as? String ?? "",
                nonce: entry["response_nonce"] as? String ?? "",
                nack: !(entry["error"] is NSNull) && entry["error"] != nil,
                names: (entry["resource_names"] as? [String] ?? []).sorted(),
                subscribe: (entry["subscribe"] as? [String] ?? []).sorted(),
                unsubscribe: (entry["unsubscribe"] as? [String] ?? []).sorted(),
                hasNode: entry["node_id"] is String)
        }
    }

    /// The NACK message of the latest answer for `type`, or nil when it was an ACK.
    func lastNACK(_ type: String) throws -> String? {
        let data = Data(try control("GET", "/requests").utf8)
        let entries = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        let answers = entries.filter { Self.shortType($0["type"] as? String ?? "") == type && !($0["response_nonce"] as? String ?? "").isEmpty }
        return answers.last?["error"] as? String
    }

    /// Requests grouped by type, each type's sequence in order.
    func sequences() throws -> [String: [Request]] {
        Dictionary(grouping: try requests(), by: \.type)
    }

    static func shortType(_ url: String) -> String {
        switch url.split(separator: ".").last {
        case "Cluster": return "CDS"
        case "ClusterLoadAssignment": return "EDS"
        case "Listener": return "LDS"
        case "RouteConfiguration": return "RDS"
        default: return url
        }
    }

    /// Waits until the proxy answered (ACK or NACK) the latest response of `type` the server
    /// sent: the proxy has processed the push.
    func waitForAnswer(_ type: String) throws {
        try eventually("\(proxy) answers the latest \(type) response", timeout: 20) {
            let data = Data(try self.control("GET", "/responses").utf8)
            let responses = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
            guard let last = responses.last(where: { Self.shortType($0["type"] as? String ?? "") == type }),
                  let nonce = last["nonce"] as? String
            else { return false }
            return try self.requests().contains { $0.type == type && $0.nonce == nonce }
        }
    }

    // MARK: Traffic

    /// Connects through the listener on `port`; records which echo server answered.
    func traffic(_ label: String, port: Int, expect expected: String) throws {
        var outcome = ""
        try? eventually("\(proxy): \(label) → \(expected)", timeout: 10) {
            outcome = self.probe(port)
            return outcome == expected
        }
        outcomes.append("\(label): \(outcome)")
    }

    private func probe(_ port: Int) -> String {
        guard let result = try? topology.execResult(namespace, [
            "python3", SluiceUnderTest.tcpkit, "client", "--connect", "127.0.0.1:\(port)", "--command", "WHO", "--timeout", "3",
        ]) else { return "error" }
        if result.stderr.contains("Connection refused") { return "refused" }
        guard result.status == 0, let local = result.stdout.split(separator: " ").first(where: { $0.hasPrefix("local=") }) else {
            return "closed"
        }
        return String(local.split(separator: ":").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A long-lived connection through `port` kept busy for `seconds`.
    func holdConnection(port: Int, seconds: Int) throws -> BackgroundProcess {
        try topology.spawn("hold-\(proxy.rawValue)", in: namespace, [
            "python3", SluiceUnderTest.tcpkit, "client", "--connect", "127.0.0.1:\(port)", "--command", "HOLD",
            "--seconds", "\(seconds)",
        ])
    }

    func record(_ outcome: String) {
        outcomes.append(outcome)
    }
}
