import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

extension TranslationContext {
    private static let originalDestinationType = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
    private static let tcpProxyType = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

    /// Translates one listener; nil when it has errors (they are recorded).
    mutating func listener(_ listener: Envoy_Config_Listener_V3_Listener, path: String, fallbackName: String) -> ListenerConfig? {
        let before = issues.count
        var addresses: [ListenerAddress] = []
        if listener.hasAddress {
            if let (endpoint, compat) = socketEndpoint(listener.address, path: child(path, "address")) {
                addresses.append(ListenerAddress(endpoint: endpoint, ipv4Compatible: compat))
            }
        } else if case .internalListener? = listener.listenerSpecifier {
            // Internal listeners have no address; the schema check reports them as unsupported.
        } else {
            invalid(child(path, "address"), "a listener needs an address")
        }
        for (index, additional) in listener.additionalAddresses.enumerated() {
            let additionalPath = child(path, "additional_addresses[\(index)].address")
            if let (endpoint, compat) = socketEndpoint(additional.address, path: additionalPath) {
                addresses.append(ListenerAddress(endpoint: endpoint, ipv4Compatible: compat))
            }
        }

        var listenerFilters: [ListenerFilter] = []
        for (index, filter) in listener.listenerFilters.enumerated() {
            let filterPath = child(path, "listener_filters[\(index)]")
            guard case .typedConfig(let config)? = filter.configType else {
                invalid(filterPath, "listener filter \"\(filter.name)\" needs a typed_config")
                continue
            }
            if Self.typeName(config.typeURL) == Self.originalDestinationType {
                listenerFilters.append(.originalDestination)
            }
        }

        var chains: [FilterChain] = []
        for (index, chain) in listener.filterChains.enumerated() {
            if let translated = filterChain(chain, path: child(path, "filter_chains[\(index)]")) { chains.append(translated) }
        }
        var defaultChain: FilterChain?
        if listener.hasDefaultFilterChain {
            defaultChain = filterChain(listener.defaultFilterChain, path: child(path, "default_filter_chain"))
        }
        if listener.filterChains.isEmpty, !listener.hasDefaultFilterChain {
            invalid(path, "no filter chains specified")
        }
        checkDuplicateMatches(listener.filterChains, path: path)

        let name = listener.name.isEmpty ? fallbackName : listener.name
        let capture = captureRole(listener, port: addresses.first?.endpoint.port, path: path)
        guard !hasErrors(since: before) else { return nil }
        return ListenerConfig(
            name: name,
            addresses: addresses,
            bindToPort: listener.hasBindToPort ? listener.bindToPort.value : true,
            useOriginalDestination: listener.hasUseOriginalDst && listener.useOriginalDst.value,
            listenerFilters: listenerFilters,
            filterChains: chains,
            defaultFilterChain: defaultChain,
            perConnectionBufferLimitBytes: listener.hasPerConnectionBufferLimitBytes
                ? Int(listener.perConnectionBufferLimitBytes.value) : 1 << 20,
            capture: capture,
            statName: listener.statPrefix.isEmpty ? nil : listener.statPrefix)
    }

    /// `metadata.filter_metadata.sluice.capture` ("outbound", "inbound", "none") wins; otherwise
    /// the listener's port decides.
    private mutating func captureRole(_ listener: Envoy_Config_Listener_V3_Listener, port: UInt16?, path: String) -> CaptureRole? {
        if let sluice = listener.metadata.filterMetadata["sluice"], let value = sluice.fields["capture"] {
            let valuePath = child(path, "metadata.filter_metadata.sluice.capture")
            guard case .stringValue(let text)? = value.kind else {
                invalid(valuePath, "expected \"outbound\", \"inbound\" or \"none\"")
                return nil
            }
            if text == "none" { return nil }
            guard let role = CaptureRole(rawValue: text) else {
                invalid(valuePath, "expected \"outbound\", \"inbound\" or \"none\", found \"\(text)\"")
                return nil
            }
            return role
        }
        guard let port, listener.hasBindToPort ? listener.bindToPort.value : true else { return nil }
        if port == options.outboundCapturePort { return .outbound }
        if port == options.inboundCapturePort { return .inbound }
        return nil
    }

    private mutating func filterChain(_ chain: Envoy_Config_Listener_V3_FilterChain, path: String) -> FilterChain? {
        let match = filterChainMatch(chain.filterChainMatch, path: child(path, "filter_chain_match"))
        var filters: [NetworkFilter] = []
        for (index, filter) in chain.filters.enumerated() {
            let filterPath = child(path, "filters[\(index)]")
            guard case .typedConfig(let config)? = filter.configType else {
                invalid(filterPath, "network filter \"\(filter.name)\" needs a typed_config")
                continue
            }
            let typeName = Self.typeName(config.typeURL)
            if typeName == Self.httpConnectionManagerType {
                if index != chain.filters.count - 1 {
                    invalid(filterPath, "http_connection_manager is a terminal filter and must be the last in the chain")
                }
                do {
                    let hcm = try Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(unpackingAny: config)
                    if let translated = httpConnectionManager(hcm, path: child(filterPath, "typed_config")) {
                        filters.append(.httpConnectionManager(translated))
                    }
                } catch {
                    invalid(child(filterPath, "typed_config"), "cannot decode HttpConnectionManager: \(error)")
                }
                continue
            }
            guard typeName == Self.tcpProxyType else { continue }  // reported by the schema check
            if index != chain.filters.count - 1 {
                invalid(filterPath, "tcp_proxy is a terminal filter and must be the last in the chain")
            }
            do {
                let proxy = try Envoy_Extensions_Filters_Network_TcpProxy_V3_TcpProxy(unpackingAny: config)
                if let translated = tcpProxy(proxy, path: child(filterPath, "typed_config")) {
                    filters.append(.tcpProxy(translated))
                }
            } catch {
                invalid(child(filterPath, "typed_config"), "cannot decode TcpProxy: \(error)")
            }
        }
        if chain.filters.isEmpty {
            invalid(child(path, "filters"), "a filter chain needs a terminal network filter")
        }
        guard let match else { return nil }
        return FilterChain(name: chain.name, match: match, filters: filters)
    }

    private mutating func filterChainMatch(_ match: Envoy_Config_Listener_V3_FilterChainMatch, path: String) -> FilterChainMatch? {
        var result = FilterChainMatch()
        if match.hasDestinationPort {
            let port = match.destinationPort.value
            if port < 1 || port > 65535 {
                invalid(child(path, "destination_port"), "\(port) is not a valid port")
            } else {
                result.destinationPort = UInt16(port)
            }
        }
        result.prefixRanges = match.prefixRanges.enumerated().compactMap {
            cidrRange($1, path: child(path, "prefix_ranges[\($0)]"))
        }
        result.sourcePrefixRanges = match.sourcePrefixRanges.enumerated().compactMap {
            cidrRange($1, path: child(path, "source_prefix_ranges[\($0)]"))
        }
        result.directSourcePrefixRanges = match.directSourcePrefixRanges.enumerated().compactMap {
            cidrRange($1, path: child(path, "direct_source_prefix_ranges[\($0)]"))
        }
        for (index, port) in match.sourcePorts.enumerated() {
            if port < 1 || port > 65535 {
                invalid(child(path, "source_ports[\(index)]"), "\(port) is not a valid port")
            } else {
                result.sourcePorts.append(UInt16(port))
            }
        }
        switch match.sourceType {
        case .any: result.sourceType = .any
        case .sameIpOrLoopback: result.sourceType = .sameIPOrLoopback
        case .external: result.sourceType = .external
        case .UNRECOGNIZED(let value): invalid(child(path, "source_type"), "unknown source type \(value)")
        }
        switch match.transportProtocol {
        case "": break
        case "raw_buffer": result.transportProtocol = "raw_buffer"
        default:
            unsupported(child(path, "transport_protocol"),
                        "\"\(match.transportProtocol)\" needs a TLS inspector; only \"raw_buffer\" is supported",
                        feature: "FilterChainMatch.transport_protocol=\(match.transportProtocol)")
        }
        return result
    }

    /// Envoy rejects two chains with identical matching rules. Compared on the Envoy messages
    /// (with list order normalized) so criteria Sluice does not implement still count.
    private mutating func checkDuplicateMatches(_ chains: [Envoy_Config_Listener_V3_FilterChain], path: String) {
        var seen: [Envoy_Config_Listener_V3_FilterChainMatch: Int] = [:]
        for (index, chain) in chains.enumerated() {
            var match = chain.filterChainMatch
            let byPrefix: (Envoy_Config_Core_V3_CidrRange, Envoy_Config_Core_V3_CidrRange) -> Bool = {
                ($0.addressPrefix, $0.prefixLen.value) < ($1.addressPrefix, $1.prefixLen.value)
            }
            match.prefixRanges.sort(by: byPrefix)
            match.sourcePrefixRanges.sort(by: byPrefix)
            match.directSourcePrefixRanges.sort(by: byPrefix)
            match.sourcePorts.sort()
            match.serverNames.sort()
            match.applicationProtocols.sort()
            if let first = seen[match] {
                invalid(child(path, "filter_chains[\(index)].filter_chain_match"),
                        "multiple filter chains with the same matching rules are defined (same as filter_chains[\(first)])")
            } else {
                seen[match] = index
            }
        }
    }

    private mutating func tcpProxy(
        _ proxy: Envoy_Extensions_Filters_Network_TcpProxy_V3_TcpProxy, path: String
    ) -> TCPProxyConfig? {
        if proxy.statPrefix.isEmpty { invalid(child(path, "stat_prefix"), "stat_prefix is required") }
        var route: TCPProxyConfig.Route?
        switch proxy.clusterSpecifier {
        case .cluster(let name)?:
            if name.isEmpty { invalid(child(path, "cluster"), "the cluster name must not be empty") }
            route = .cluster(name)
        case .weightedClusters(let weighted)?:
            let weightedPath = child(path, "weighted_clusters.clusters")
            if weighted.clusters.isEmpty { invalid(weightedPath, "at least one cluster is required") }
            var entries: [WeightedCluster] = []
            for (index, entry) in weighted.clusters.enumerated() {
                if entry.name.isEmpty { invalid("\(weightedPath)[\(index)].name", "the cluster name must not be empty") }
                if entry.weight < 1 { invalid("\(weightedPath)[\(index)].weight", "the weight must be at least 1") }
                entries.append(WeightedCluster(name: entry.name, weight: entry.weight))
            }
            route = .weightedClusters(entries)
        case nil:
            invalid(path, "tcp_proxy needs cluster or weighted_clusters")
        }
        var maxAttempts = 1
        if proxy.hasMaxConnectAttempts {
            if proxy.maxConnectAttempts.value < 1 {
                invalid(child(path, "max_connect_attempts"), "must be at least 1")
            }
            maxAttempts = Int(proxy.maxConnectAttempts.value)
        }
        var idle: Duration? = .seconds(3600)
        if proxy.hasIdleTimeout {
            idle = proxy.idleTimeout.isPositive ? proxy.idleTimeout.swiftDuration : nil
        }
        var maxDuration: Duration?
        if proxy.hasMaxDownstreamConnectionDuration, proxy.maxDownstreamConnectionDuration.isPositive {
            maxDuration = proxy.maxDownstreamConnectionDuration.swiftDuration
        }
        guard let route else { return nil }
        return TCPProxyConfig(
            statPrefix: proxy.statPrefix, route: route, idleTimeout: idle, maxConnectAttempts: maxAttempts,
            maxDownstreamConnectionDuration: maxDuration)
    }

    static func typeName(_ url: String) -> String {
        url.split(separator: "/").last.map(String.init) ?? url
    }
}
