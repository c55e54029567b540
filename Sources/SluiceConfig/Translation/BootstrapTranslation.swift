import SluiceModel
import SluiceXDSTypes

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
