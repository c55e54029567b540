import Foundation
import SluiceConfig
import SluiceModel
import Testing

/// Istio-generated configuration from `../shared/conformance` (never copied into this repo).
enum Conformance {
    /// The conformance directory: `$SLUICE_CONFORMANCE_DIR`, `../shared/conformance` next to the
    /// checkout, or `/work/shared/conformance`.
    static var directory: URL? {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["SLUICE_CONFORMANCE_DIR"] { candidates.append(configured) }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(packageRoot.deletingLastPathComponent().appendingPathComponent("shared/conformance").path)
        candidates.append("/work/shared/conformance")
        return candidates.map { URL(fileURLWithPath: $0) }.first {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent("istio").path)
        }
    }
}

@Suite struct IstioConformanceTests {
    /// Every feature of the Istio sidecar's listeners that Sluice does not implement yet. When a
    /// feature is implemented, remove it here: the list may only shrink.
    static let knownUnsupported: Set<String> = [
        // Envoy features (TLS, inspectors, internal listeners, tunneling)
        "envoy.config.listener.v3.FilterChain.transport_socket",
        "envoy.config.listener.v3.FilterChainMatch.application_protocols",
        "envoy.config.listener.v3.Listener.continue_on_listener_filters_timeout",
        "envoy.config.listener.v3.Listener.internal_listener",
        "envoy.config.listener.v3.Listener.listener_filters_timeout",
        "envoy.config.listener.v3.ListenerFilter.filter_disabled",
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "envoy.extensions.filters.network.rbac.v3.RBAC",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.tunneling_config",
        "FilterChainMatch.transport_protocol=tls",
        // HTTP connection manager parts: tracing, client certificates (mTLS), CONNECT (HBONE)
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.tracing",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.forward_client_cert_details",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.set_current_client_cert_details",
        "envoy.config.core.v3.Http2ProtocolOptions.allow_connect",
        "envoy.config.route.v3.RouteAction.UpgradeConfig.connect_config",
        "envoy.config.route.v3.RouteMatch.connect_matcher",
        // HTTP filters Sluice lacks, and RBAC principals from JWT metadata and ambient filter state
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
        "envoy.extensions.filters.http.wasm.v3.Wasm",
        "envoy.config.rbac.v3.Principal.filter_state",
        "envoy.config.rbac.v3.Principal.metadata",
        // Istio's own proxy extensions that change traffic (telemetry-only ones are ignored)
        "io.istio.http.connect_authority.Config",
        "io.istio.http.connect_baggage.Config",
        "io.istio.network.authn.Config",
        "istio.set_internal_dst_address.v1.Config",
    ]

    /// Istio telemetry extensions Sluice accepts and skips (SupportPolicy.ignoredExtensions).
    static let knownIgnored: Set<String> = [
        "envoy.tcp.metadataexchange.config.MetadataExchange",
        "istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig",
        "stats.PluginConfig",
    ]

    @Test func sidecarListenersLoadOrNameWhatIsMissing() throws {
        let directory = try #require(Conformance.directory, "conformance inputs not found (set SLUICE_CONFORMANCE_DIR)")
        let dump = try ConfigDocument.load(path: directory.appendingPathComponent("istio/sidecar-configdump.yaml").path)
        let listeners = Self.listeners(in: dump)
        #expect(listeners.count > 10)

        var loaded: [String] = []
        var missing: [String: Set<String>] = [:]
        var ignored: Set<String> = []
        for (name, listener) in listeners {
            let outcome = ResourceLoader.listener(listener)
            let invalid = outcome.issues.filter { $0.kind == .invalid }
            #expect(invalid.isEmpty, "Istio listener \(name) was misread as invalid: \(invalid)")
            if outcome.value != nil {
                loaded.append(name)
            }
            for issue in outcome.issues where issue.kind == .unsupported {
                missing[issue.feature ?? issue.message, default: []].insert(name)
            }
            for issue in outcome.issues where issue.kind == .ignored {
                ignored.insert(issue.feature ?? issue.message)
            }
        }
        #expect(ignored == Self.knownIgnored)
        let report = missing.keys.sorted().map { "\($0): \(missing[$0]!.count) listener(s)" }.joined(separator: "\n")
        print("Istio sidecar listeners: \(loaded.count) of \(listeners.count) load; not yet supported:\n\(report)")
        let unexpected = Set(missing.keys).subtracting(Self.knownUnsupported)
        #expect(unexpected.isEmpty, "new unsupported features (add support or list them): \(unexpected.sorted())")
        let fixed = Self.knownUnsupported.subtracting(missing.keys)
        #expect(fixed.isEmpty, "now supported, remove from knownUnsupported: \(fixed.sorted())")
    }

    /// The sidecar's static listeners (Prometheus stats on 15090, readiness on 15021) carry inline
    /// route tables and load completely.
    @Test func sidecarStaticHTTPListenersTranslate() throws {
        let directory = try #require(Conformance.directory, "conformance inputs not found (set SLUICE_CONFORMANCE_DIR)")
        let dump = try ConfigDocument.load(path: directory.appendingPathComponent("istio/sidecar-configdump.yaml").path)
        var seen: [String: RouteConfiguration] = [:]
        for (_, document) in Self.listeners(in: dump) {
            let outcome = ResourceLoader.listener(document)
            guard let listener = outcome.value else { continue }
            for case .httpConnectionManager(let manager) in listener.filterChains.flatMap(\.filters) {
                if case .inline(let routes) = manager.routes { seen[manager.statPrefix] = routes }
            }
        }
        let stats = try #require(seen["stats"])
        #expect(stats.virtualHosts.first?.domains == ["*"])
        #expect(stats.virtualHosts.first?.routes.first?.match.path == .prefix("/stats/prometheus"))
        #expect(stats.virtualHosts.first?.routes.first?.action == .forward(RouteAction(target: .cluster("prometheus_stats"))))
        let agent = try #require(seen["agent"])
        #expect(agent.virtualHosts.first?.routes.first?.action == .forward(RouteAction(target: .cluster("agent"))))
    }

    /// The `Listener` messages of a `ListenersConfigDump`, named.
    static func listeners(in dump: JSONValue) -> [(String, JSONValue)] {
        guard case .array(let configs)? = dump["configs"] else { return [] }
        var result: [(String, JSONValue)] = []
        for config in configs {
            if case .array(let statics)? = config["static_listeners"] {
                for entry in statics {
                    if let listener = entry["listener"] { result.append((name(of: listener), strip(listener))) }
                }
            }
            if case .array(let dynamics)? = config["dynamic_listeners"] {
                for entry in dynamics {
                    if let listener = entry["active_state"]?["listener"] { result.append((name(of: listener), strip(listener))) }
                }
            }
        }
        return result
    }

    private static func name(of listener: JSONValue) -> String {
        if case .string(let name)? = listener["name"] { return name }
        return "(unnamed)"
    }

    /// Drops the dump's `@type` wrapper key so the value reads as a plain Listener.
    private static func strip(_ listener: JSONValue) -> JSONValue {
        guard case .object(let members) = listener else { return listener }
        return .object(members.filter { $0.key != "@type" })
    }
}
