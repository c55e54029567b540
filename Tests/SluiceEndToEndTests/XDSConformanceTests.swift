import Foundation
import Testing

/// Istio-generated resources (`../shared/conformance`) served to Sluice over ADS, one at a
/// time: each is ACKed, or NACKed with an error that names what Sluice does not implement.
@Suite(.serialized) struct XDSConformanceTests {
    /// Resources Sluice NACKs today, with a feature their NACK must name. When support lands,
    /// remove entries: the list may only shrink.
    static let knownNACKs: [String: String] = [
        // waypoint
        "cluster inbound-vip|8000|http|httpbin.default.svc.cluster.local": "Cluster.transport_socket",
        "endpoints inbound-vip|8100|http|httpbin.default.svc.cluster.local": "envoy_internal_address",
        // Istio's dump shows an unset locality weight as 0, which Envoy's validation rejects too.
        "endpoints prometheus_stats": "load_balancing_weight: invalid",
        "listener connect_originate": "tunneling_config",
        "listener connect_terminate": "io.istio.network.authn.Config",
        "listener main_internal": "HttpConnectionManager",
        // sidecar: its bootstrap's HTTP listeners route to bootstrap clusters this test does not
        // serve (Envoy's validate_clusters rejects them too); ALPN/TLS matching and mTLS
        "listener 0.0.0.0:15021 (unnamed)": "route: unknown cluster 'agent'",
        "listener 0.0.0.0:15090 (unnamed)": "route: unknown cluster 'prometheus_stats'",
        "listener 0.0.0.0_15010": "application_protocols",
        "listener 0.0.0.0_15014": "application_protocols",
        "listener 0.0.0.0_5000": "application_protocols",
        "listener 0.0.0.0_80": "application_protocols",
        "listener 0.0.0.0_8000": "application_protocols",
        "listener 0.0.0.0_9080": "application_protocols",
        "listener 10.100.228.83_15008": "application_protocols",
        "listener 10.100.4.52_443": "application_protocols",
        "listener 10.102.11.148_15008": "application_protocols",
        "listener 10.109.111.153_15008": "application_protocols",
        "listener 10.111.137.16_15008": "application_protocols",
        "listener 10.96.0.10_9153": "application_protocols",
        "listener virtualInbound": "application_protocols",
    ]

    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces")
        try #require(Self.conformance != nil, "conformance inputs not found (../shared/conformance or $SLUICE_CONFORMANCE_DIR)")
    }

    static var conformance: URL? {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["SLUICE_CONFORMANCE_DIR"] { candidates.append(configured) }
        candidates.append(SluiceUnderTest.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/conformance").path)
        candidates.append("/work/shared/conformance")
        return candidates.map { URL(fileURLWithPath: $0) }.first {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent("istio").path)
        }
    }

    @Test func istioResourcesAreACKedOrNACKedNamingWhatIsMissing() throws {
        let directory = try #require(Self.conformance)
        let waypoint = try Self.json(directory.appendingPathComponent("istio/waypoint-config_dump.json"))
        let sidecar = try Self.yamlAsJSON(directory.appendingPathComponent("istio/sidecar-configdump.yaml"))
        try withTopology("xds-conformance") { topology in
            let xds = try XDSHarness(topology: topology, proxy: .sluice, mode: .sotw)
            try xds.push("cds", "base", [])
            try xds.push("lds", "base", [])
            try xds.startProxy()
            try xds.waitForAnswer("LDS")
            var outcomes: [String: String] = [:]
            var version = 0
            func serve(_ type: String, _ short: String, _ label: String, _ resource: [String: Any]) throws {
                version += 1
                try xds.push(type, "c\(version)", [try Self.text(resource)])
                try xds.waitForAnswer(short)
                outcomes[label] = try xds.lastNACK(short) ?? "ACK"
            }

            for cluster in Self.resources(in: waypoint, section: "ClustersConfigDump", lists: ["static_clusters", "dynamic_active_clusters"], key: "cluster") {
                try serve("cds", "CDS", "cluster \(cluster["name"] as? String ?? "?")", cluster)
            }
            // Endpoints are only requested for EDS clusters: serve each assignment behind one.
            for assignment in Self.resources(in: waypoint, section: "EndpointsConfigDump", lists: ["static_endpoint_configs", "dynamic_endpoint_configs"], key: "endpoint_config") {
                let name = assignment["cluster_name"] as? String ?? "?"
                version += 1
                try xds.push("cds", "c\(version)", [XDSHarness.cluster(name)])
                try xds.waitForAnswer("CDS")
                try serve("eds", "EDS", "endpoints \(name)", assignment)
            }
            for listener in Self.resources(in: waypoint, section: "ListenersConfigDump", lists: ["static_listeners", "dynamic_listeners"], key: "listener")
                + Self.resources(in: sidecar, section: "ListenersConfigDump", lists: ["static_listeners", "dynamic_listeners"], key: "listener") {
                let address = (listener["address"] as? [String: Any])?["socket_address"] as? [String: Any]
                let name = listener["name"] as? String ?? "\(address?["address"] ?? "?"):\(address?["port_value"] ?? "?") (unnamed)"
                try serve("lds", "LDS", "listener \(name)", listener)
            }

            let report = outcomes.keys.sorted().map { label in
                let outcome = outcomes[label]!
                return "\(label): " + (outcome == "ACK" ? "ACK" : "NACK (\(outcome.prefix(300)))")
            }.joined(separator: "\n")
            print("Istio resources over ADS:\n\(report)")
            let nacked = Set(outcomes.filter { $0.value != "ACK" }.keys)
            #expect(nacked.subtracting(Self.knownNACKs.keys).isEmpty, "newly NACKed: \(nacked.subtracting(Self.knownNACKs.keys).sorted())")
            #expect(Set(Self.knownNACKs.keys).subtracting(nacked).isEmpty,
                    "now ACKed, remove from knownNACKs: \(Set(Self.knownNACKs.keys).subtracting(nacked).sorted())")
            for (label, feature) in Self.knownNACKs {
                guard let message = outcomes[label], message != "ACK" else { continue }
                #expect(feature.split(separator: "|").contains { message.contains($0) }, "\(label): NACK must name \(feature): \(message)")
            }
            #expect(outcomes.count > 30)
        }
    }

    // MARK: Inputs

    static func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    /// The sidecar dump is YAML; the test venv's Python (PyYAML) turns it into JSON.
    static func yamlAsJSON(_ url: URL) throws -> [String: Any] {
        let json = try Shell.check([
            XDSHarness.python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", url.path,
        ])
        return try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] ?? [:]
    }

    /// Resources of one dump section, without the dump's wrappers.
    static func resources(in dump: [String: Any], section: String, lists: [String], key: String) -> [[String: Any]] {
        let configs = dump["configs"] as? [[String: Any]] ?? []
        var result: [[String: Any]] = []
        for config in configs where (config["@type"] as? String)?.hasSuffix(section) == true {
            for list in lists {
                for entry in config[list] as? [[String: Any]] ?? [] {
                    if let resource = entry[key] as? [String: Any] ?? (entry["active_state"] as? [String: Any])?[key] as? [String: Any] {
                        result.append(resource)
                    }
                }
            }
        }
        return result
    }

    static func text(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }
}
