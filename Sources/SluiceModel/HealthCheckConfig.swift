import Foundation

/// One entry of a cluster's `health_checks` (active health checking).
public struct HealthCheckConfig: Hashable, Sendable {
    /// What one check does.
    public enum Kind: Hashable, Sendable {
        case http(HTTPHealthCheck)
        /// Connect, send `send` if any, and succeed when every `receive` block was read in order
        /// (connect-only when both are empty).
        case tcp(send: Data, receive: [Data])
    }

    public var kind: Kind
    public var timeout: Duration
    public var interval: Duration
    public var initialJitter: Duration
    public var intervalJitter: Duration
    public var intervalJitterPercent: Int
    public var unhealthyThreshold: Int
    public var healthyThreshold: Int
    /// Interval used before the cluster saw any traffic (60s by default).
    public var noTrafficInterval: Duration
    public var noTrafficHealthyInterval: Duration?
    public var unhealthyInterval: Duration?
    public var unhealthyEdgeInterval: Duration?
    public var healthyEdgeInterval: Duration?
    public var reuseConnection: Bool

    public init(
        kind: Kind, timeout: Duration, interval: Duration, initialJitter: Duration = .zero,
        intervalJitter: Duration = .zero, intervalJitterPercent: Int = 0, unhealthyThreshold: Int,
        healthyThreshold: Int, noTrafficInterval: Duration = .seconds(60), noTrafficHealthyInterval: Duration? = nil,
        unhealthyInterval: Duration? = nil, unhealthyEdgeInterval: Duration? = nil,
        healthyEdgeInterval: Duration? = nil, reuseConnection: Bool = true
    ) {
        self.kind = kind
        self.timeout = timeout
        self.interval = interval
        self.initialJitter = initialJitter
        self.intervalJitter = intervalJitter
        self.intervalJitterPercent = intervalJitterPercent
        self.unhealthyThreshold = unhealthyThreshold
        self.healthyThreshold = healthyThreshold
        self.noTrafficInterval = noTrafficInterval
        self.noTrafficHealthyInterval = noTrafficHealthyInterval
        self.unhealthyInterval = unhealthyInterval
        self.unhealthyEdgeInterval = unhealthyEdgeInterval
        self.healthyEdgeInterval = healthyEdgeInterval
        self.reuseConnection = reuseConnection
    }
}

/// `http_health_check`.
public struct HTTPHealthCheck: Hashable, Sendable {
    public var path: String
    /// The Host header; the cluster name when empty (as Envoy).
    public var host: String
    /// Half-open status ranges `[start, end)`; 200..<300 when not configured.
    public var expectedStatuses: [Range<Int>]
    public var headers: [Header]
    public var requestHeadersToRemove: [String]
    public var useHTTP2: Bool

    /// One header added to health-check requests.
    public struct Header: Hashable, Sendable {
        public var name: String
        public var value: String
        public var append: Bool
        public init(name: String, value: String, append: Bool = true) {
            self.name = name
            self.value = value
            self.append = append
        }
    }

    public init(path: String, host: String = "", expectedStatuses: [Range<Int>] = [200..<300],
                headers: [Header] = [], requestHeadersToRemove: [String] = [], useHTTP2: Bool = false) {
        self.path = path
        self.host = host
        self.expectedStatuses = expectedStatuses
        self.headers = headers
        self.requestHeadersToRemove = requestHeadersToRemove
        self.useHTTP2 = useHTTP2
    }
}
