/// The proxy's whole configuration in Sluice's own model.
public struct ProxyConfiguration: Hashable, Sendable {
    public var node: NodeIdentity
    public var admin: AdminConfig?
    public var listeners: [ListenerConfig]
    public var clusters: [ClusterConfig]

    public init(
        node: NodeIdentity = NodeIdentity(),
        admin: AdminConfig? = nil,
        listeners: [ListenerConfig] = [],
        clusters: [ClusterConfig] = []
    ) {
        self.node = node
        self.admin = admin
        self.listeners = listeners
        self.clusters = clusters
    }

    /// Listeners that become per-workload capture listeners, by role.
    public func captureListener(_ role: CaptureRole) -> ListenerConfig? {
        listeners.first { $0.capture == role }
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
