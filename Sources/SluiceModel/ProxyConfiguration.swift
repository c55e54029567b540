/// The proxy's whole configuration in Sluice's own model.
public struct ProxyConfiguration: Hashable, Sendable {
    public var node: NodeIdentity
    public var admin: AdminConfig?
    public var listeners: [ListenerConfig]
    public var clusters: [ClusterConfig]
    /// Route configurations received over RDS, by name.
    public var routeConfigurations: [String: RouteConfiguration]

    public init(
        node: NodeIdentity = NodeIdentity(),
        admin: AdminConfig? = nil,
        listeners: [ListenerConfig] = [],
        clusters: [ClusterConfig] = [],
        routeConfigurations: [String: RouteConfiguration] = [:]
    ) {
        self.node = node
        self.admin = admin
        self.listeners = listeners
        self.clusters = clusters
        self.routeConfigurations = routeConfigurations
    }

    /// Listeners that become per-workload capture listeners, by role.
    public func captureListener(_ role: CaptureRole) -> ListenerConfig? {
        listeners.first { $0.capture == role }
    }

    /// The service addresses (VIP:port) this configuration routes: the addresses of listeners
    /// that only receive connections handed off by original destination (`bind_to_port: false`,
    /// Istio's per-service outbound listeners such as `10.96.0.10_53`). Wildcard addresses
    /// (`0.0.0.0_8080`) name a port on every address, not a service, and are left out.
    public var serviceAddresses: [SocketEndpoint] {
        var seen = Set<SocketEndpoint>()
        return listeners.filter { !$0.bindToPort && $0.capture == nil }
            .flatMap { $0.addresses.map(\.endpoint) }
            .filter { !$0.address.isUnspecified && $0.port != 0 && seen.insert($0).inserted }
    }
}

/// Envoy's `Node`: who this proxy says it is to a control plane.
public struct NodeIdentity: Hashable, Sendable {
    public var id: String
    public var cluster: String

    public init(id: String = "", cluster: String = "") {
        self.id = id
        self.cluster = cluster
    }
}

/// The admin endpoint.
public struct AdminConfig: Hashable, Sendable {
    public var address: AdminAddress

    public init(address: AdminAddress) {
        self.address = address
    }
}

/// Where the admin API listens.
public enum AdminAddress: Hashable, Sendable {
    case tcp(SocketEndpoint)
    /// A Unix socket (`pipe`), whose peers are checked by credentials.
    case unixSocket(path: String, mode: UInt32)
}
