/// `envoy.filters.network.tcp_proxy`.
public struct TCPProxyConfig: Hashable, Sendable {
    public var statPrefix: String
    public var route: Route
    /// nil disables the idle timeout (Envoy: an explicit `0s`); Envoy's default is one hour.
    public var idleTimeout: Duration?
    /// Upstream connection attempts before the downstream connection is closed (Envoy default 1).
    public var maxConnectAttempts: Int
    /// Upper bound on a downstream connection's lifetime, nil for none.
    public var maxDownstreamConnectionDuration: Duration?

    /// Where connections go.
    public enum Route: Hashable, Sendable {
        case cluster(String)
        case weightedClusters([WeightedCluster])
    }

    public init(
        statPrefix: String,
        route: Route,
        idleTimeout: Duration? = .seconds(3600),
        maxConnectAttempts: Int = 1,
        maxDownstreamConnectionDuration: Duration? = nil
    ) {
        self.statPrefix = statPrefix
        self.route = route
        self.idleTimeout = idleTimeout
        self.maxConnectAttempts = maxConnectAttempts
        self.maxDownstreamConnectionDuration = maxDownstreamConnectionDuration
    }

    /// Every cluster name the route can choose.
    public var clusterNames: [String] {
        switch route {
        case .cluster(let name): return [name]
        case .weightedClusters(let clusters): return clusters.map(\.name)
        }
    }
}

/// One target of a weighted route.
public struct WeightedCluster: Hashable, Sendable {
    public var name: String
    public var weight: UInt32

    public init(name: String, weight: UInt32) {
        self.name = name
        self.weight = weight
    }
}
