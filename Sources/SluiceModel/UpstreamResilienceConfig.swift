/// `circuit_breakers.thresholds`, one entry per routing priority.
public struct CircuitBreakerSettings: Hashable, Sendable {
    public var defaultPriority: CircuitBreakerThresholds
    public var highPriority: CircuitBreakerThresholds

    public init(defaultPriority: CircuitBreakerThresholds = CircuitBreakerThresholds(),
                highPriority: CircuitBreakerThresholds = CircuitBreakerThresholds()) {
        self.defaultPriority = defaultPriority
        self.highPriority = highPriority
    }
}

/// The limits of one routing priority.
public struct CircuitBreakerThresholds: Hashable, Sendable {
    public var maxConnections: Int
    public var maxPendingRequests: Int
    public var maxRequests: Int
    public var maxRetries: Int
    /// Publish `remaining_*` gauges (`track_remaining`).
    public var trackRemaining: Bool

    /// Envoy's defaults: 1024 connections, 1024 pending requests, 1024 requests, 3 retries.
    public init(maxConnections: Int = 1024, maxPendingRequests: Int = 1024, maxRequests: Int = 1024,
                maxRetries: Int = 3, trackRemaining: Bool = false) {
        self.maxConnections = maxConnections
        self.maxPendingRequests = maxPendingRequests
        self.maxRequests = maxRequests
        self.maxRetries = maxRetries
        self.trackRemaining = trackRemaining
    }
}

/// `outlier_detection` (consecutive-error detectors; success-rate and failure-percentage
/// detectors are reported unsupported when enabled).
public struct OutlierDetectionConfig: Hashable, Sendable {
    public var consecutive5xx: Int
    public var consecutiveGatewayFailure: Int
    public var consecutiveLocalOriginFailure: Int
    public var splitExternalLocalOriginErrors: Bool
    public var interval: Duration
    public var baseEjectionTime: Duration
    public var maxEjectionTime: Duration
    public var maxEjectionTimeJitter: Duration
    public var maxEjectionPercent: Int
    public var alwaysEjectOneHost: Bool
    /// Percent chance a detected consecutive-5xx ejection is carried out.
    public var enforcingConsecutive5xx: Int
    public var enforcingConsecutiveGatewayFailure: Int
    public var enforcingConsecutiveLocalOriginFailure: Int
    /// An ejected host that passes an active health check is returned at once (true by default).
    public var successfulActiveHealthCheckUnejectHost: Bool

    /// Envoy's defaults.
    public init(
        consecutive5xx: Int = 5, consecutiveGatewayFailure: Int = 5, consecutiveLocalOriginFailure: Int = 5,
        splitExternalLocalOriginErrors: Bool = false, interval: Duration = .seconds(10),
        baseEjectionTime: Duration = .seconds(30), maxEjectionTime: Duration = .seconds(300),
        maxEjectionTimeJitter: Duration = .zero, maxEjectionPercent: Int = 10, alwaysEjectOneHost: Bool = false,
        enforcingConsecutive5xx: Int = 100, enforcingConsecutiveGatewayFailure: Int = 0,
        enforcingConsecutiveLocalOriginFailure: Int = 100, successfulActiveHealthCheckUnejectHost: Bool = true
    ) {
        self.consecutive5xx = consecutive5xx
        self.consecutiveGatewayFailure = consecutiveGatewayFailure
        self.consecutiveLocalOriginFailure = consecutiveLocalOriginFailure
        self.splitExternalLocalOriginErrors = splitExternalLocalOriginErrors
        self.interval = interval
        self.baseEjectionTime = baseEjectionTime
        self.maxEjectionTime = maxEjectionTime
        self.maxEjectionTimeJitter = maxEjectionTimeJitter
        self.maxEjectionPercent = maxEjectionPercent
        self.alwaysEjectOneHost = alwaysEjectOneHost
        self.enforcingConsecutive5xx = enforcingConsecutive5xx
        self.enforcingConsecutiveGatewayFailure = enforcingConsecutiveGatewayFailure
        self.enforcingConsecutiveLocalOriginFailure = enforcingConsecutiveLocalOriginFailure
        self.successfulActiveHealthCheckUnejectHost = successfulActiveHealthCheckUnejectHost
    }
}

/// How the router speaks HTTP to a cluster (`envoy.extensions.upstreams.http.v3.HttpProtocolOptions`
/// or the legacy cluster fields).
public struct UpstreamHTTPOptions: Hashable, Sendable {
    /// Which HTTP version upstream connections use.
    public enum ProtocolChoice: Hashable, Sendable {
        case http1
        case http2
        /// The downstream request's version (`use_downstream_protocol_config`).
        case useDownstream
    }

    public var protocolChoice: ProtocolChoice
    public var http2: HTTP2ProtocolOptions
    /// `common_http_protocol_options.idle_timeout`: close an idle upstream connection (1h by default).
    public var idleTimeout: Duration?
    /// `common_http_protocol_options.max_requests_per_connection`; nil is unlimited.
    public var maxRequestsPerConnection: Int?

    public init(protocolChoice: ProtocolChoice = .http1, http2: HTTP2ProtocolOptions = HTTP2ProtocolOptions(),
                idleTimeout: Duration? = .seconds(3600), maxRequestsPerConnection: Int? = nil) {
        self.protocolChoice = protocolChoice
        self.http2 = http2
        self.idleTimeout = idleTimeout
        self.maxRequestsPerConnection = maxRequestsPerConnection
    }
}
