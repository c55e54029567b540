import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

extension TranslationContext {
    /// Translates a whole bootstrap and checks what spans resources (names, addresses, references).
    mutating func bootstrap(_ bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap) -> ProxyConfiguration {
        var configuration = ProxyConfiguration()
        configuration.node = NodeIdentity(id: bootstrap.node.id, cluster: bootstrap.node.cluster)
        if bootstrap.hasAdmin, bootstrap.admin.hasAddress {
            configuration.admin = admin(bootstrap.admin.address, path: "admin.address")
        }

        var listenerNames: [String: Int] = [:]
        var boundAddresses: [SocketEndpoint: String] = [:]
        for (index, raw) in bootstrap.staticResources.listeners.enumerated() {
            let path = "static_resources.listeners[\(index)]"
            guard let listener = listener(raw, path: path, fallbackName: "listener_\(index)") else { continue }
            if let first = listenerNames[listener.name] {
                invalid(child(path, "name"), "duplicate listener name \"\(listener.name)\" (also static_resources.listeners[\(first)])")
                continue
            }
            listenerNames[listener.name] = index
            if listener.bindToPort {
                for address in listener.addresses {
                    if let other = boundAddresses[address.endpoint] {
                        invalid(child(path, "address"), "listener \"\(listener.name)\" has duplicate address \(address.endpoint) as listener \"\(other)\"")
                    }
                    boundAddresses[address.endpoint] = listener.name
                }
            }
            configuration.listeners.append(listener)
        }

        var clusterNames: [String: Int] = [:]
        for (index, raw) in bootstrap.staticResources.clusters.enumerated() {
            let path = "static_resources.clusters[\(index)]"
            if let first = clusterNames[raw.name], !raw.name.isEmpty {
                invalid(child(path, "name"), "duplicate cluster \"\(raw.name)\" (also static_resources.clusters[\(first)])")
                continue
            }
            clusterNames[raw.name] = index
            if let cluster = cluster(raw, path: path) { configuration.clusters.append(cluster) }
        }

        for (index, listener) in configuration.listeners.enumerated() {
            for chain in listener.filterChains + (listener.defaultFilterChain.map { [$0] } ?? []) {
                // A static route table has validate_clusters on by default: Envoy rejects it
                // when it names a cluster the bootstrap does not define.
                for case .httpConnectionManager(let manager) in chain.filters {
                    guard case .inline(let routes) = manager.routes, routes.validateClusters else { continue }
                    for name in routes.clusterNames.sorted() where clusterNames[name] == nil {
                        invalid("static_resources.listeners[\(index)]",
                                "route: unknown cluster '\(name)' in route_config \"\(routes.name)\" (set validate_clusters: false for clusters from CDS)")
                    }
                }
                for case .tcpProxy(let proxy) in chain.filters {
                    for name in proxy.clusterNames where clusterNames[name] == nil {
                        warning("static_resources.listeners[\(index)]",
                                "tcp_proxy refers to unknown cluster \"\(name)\"; its connections will be closed")
                    }
                }
            }
        }
        return configuration
    }

    private mutating func admin(_ address: Envoy_Config_Core_V3_Address, path: String) -> AdminConfig? {
        switch address.address {
        case .socketAddress(let socket)?:
            guard let (endpoint, _) = ipEndpoint(socket, path: child(path, "socket_address")) else { return nil }
            return AdminConfig(address: .tcp(endpoint))
        case .pipe(let pipe)?:
            if pipe.path.isEmpty { invalid(child(path, "pipe.path"), "a path is required") }
            return AdminConfig(address: .unixSocket(path: pipe.path, mode: pipe.mode == 0 ? 0o600 : pipe.mode))
        case .envoyInternalAddress?:
            unsupported(child(path, "envoy_internal_address"), "the admin endpoint needs a socket address or a pipe")
        case nil:
            break
        }
        return nil
    }
}

extension TranslationContext {
    /// Static HTTP connection managers using RDS need an ADS stream to fetch their routes from.
    mutating func checkRDSSources(_ bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, hasADS: Bool) {
        guard !hasADS else { return }
        for (listenerIndex, listener) in bootstrap.staticResources.listeners.enumerated() {
            let chains = listener.filterChains.enumerated().map { ("filter_chains[\($0)]", $1) }
                + (listener.hasDefaultFilterChain ? [("default_filter_chain", listener.defaultFilterChain)] : [])
            for (chainPath, chain) in chains {
                for (filterIndex, filter) in chain.filters.enumerated() {
                    guard case .typedConfig(let config)? = filter.configType,
                          let manager = try? Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(unpackingAny: config),
                          case .rds(let rds)? = manager.routeSpecifier
                    else { continue }
                    invalid("static_resources.listeners[\(listenerIndex)].\(chainPath).filters[\(filterIndex)].typed_config.rds",
                            "route configuration \"\(rds.routeConfigName)\" comes over RDS, but the bootstrap has no dynamic_resources.ads_config to fetch it; use route_config or configure ADS")
                }
            }
        }
    }
}
