/// Envoy's `route.v3.RouteAction`: where a request is forwarded and how.
public struct RouteAction: Hashable, Sendable {
    public enum Target: Hashable, Sendable {
        case cluster(String)
        case weighted(WeightedHTTPClusters)
        /// The cluster named by this request header.
        case clusterHeader(String)
    }

    public enum HostRewrite: Hashable, Sendable {
        case literal(String)
        /// The upstream host's hostname (or address).
        case autoHost
        case header(String)
        case pathRegex(pattern: String, substitution: String)
    }

    public var target: Target
    /// Status when the target cluster does not exist (Envoy default 503).
    public var clusterNotFoundStatus: Int
    public var prefixRewrite: String?
    /// `regex_rewrite`: RE2 pattern and substitution applied to the path.
    public var regexRewritePattern: String?
    public var regexRewriteSubstitution: String
    public var hostRewrite: HostRewrite?
    /// Whole-response timeout; nil disables it. Envoy's default is 15 s.
    public var timeout: Duration?
    public var idleTimeout: Duration?
    public var retryPolicy: RetryPolicy?
    public var mirrors: [RequestMirrorPolicy]
    public var hashPolicies: [HashPolicy]
    /// `max_stream_duration.grpc_timeout_header_max`: honour `grpc-timeout` up to this (0 = no cap).
    public var grpcTimeoutHeaderMax: Duration?
    public var grpcTimeoutHeaderOffset: Duration?
    public var maxStreamDuration: Duration?
    /// Let upgrade requests of these types (e.g. `websocket`) through; nil inherits the HCM's.
    public var upgradeConfigs: [String: Bool]
    public var appendXForwardedHost: Bool

    public init(
        target: Target, clusterNotFoundStatus: Int = 503, prefixRewrite: String? = nil, regexRewritePattern: String? = nil,
        regexRewriteSubstitution: String = "", hostRewrite: HostRewrite? = nil, timeout: Duration? = .seconds(15),
        idleTimeout: Duration? = nil, retryPolicy: RetryPolicy? = nil, mirrors: [RequestMirrorPolicy] = [],
        hashPolicies: [HashPolicy] = [], grpcTimeoutHeaderMax: Duration? = nil, grpcTimeoutHeaderOffset: Duration? = nil,
        maxStreamDuration: Duration? = nil, upgradeConfigs: [String: Bool] = [:], appendXForwardedHost: Bool = false
    ) {
        self.target = target
        self.clusterNotFoundStatus = clusterNotFoundStatus
        self.prefixRewrite = prefixRewrite
        self.regexRewritePattern = regexRewritePattern
        self.regexRewriteSubstitution = regexRewriteSubstitution
        self.hostRewrite = hostRewrite
        self.timeout = timeout
        self.idleTimeout = idleTimeout
        self.retryPolicy = retryPolicy
        self.mirrors = mirrors
        self.hashPolicies = hashPolicies
        self.grpcTimeoutHeaderMax = grpcTimeoutHeaderMax
        self.grpcTimeoutHeaderOffset = grpcTimeoutHeaderOffset
        self.maxStreamDuration = maxStreamDuration
        self.upgradeConfigs = upgradeConfigs
        self.appendXForwardedHost = appendXForwardedHost
    }
}

/// `weighted_clusters`: one cluster chosen per request in proportion to the weights.
public struct WeightedHTTPClusters: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var name: String
        public var weight: UInt32
        public var headers: HeaderMutations
        public var filterOverrides: [String: PerRouteFilterConfig]

        public init(name: String, weight: UInt32, headers: HeaderMutations = HeaderMutations(),
                    filterOverrides: [String: PerRouteFilterConfig] = [:]) {
            self.name = name
            self.weight = weight
            self.headers = headers
            self.filterOverrides = filterOverrides
        }
    }

    public var clusters: [Entry]
    /// `header_name`: a header holding the random value to use, for tests and stickiness.
    public var randomValueHeader: String?

    public init(clusters: [Entry], randomValueHeader: String? = nil) {
        self.clusters = clusters
        self.randomValueHeader = randomValueHeader
    }

    public var totalWeight: UInt64 { clusters.reduce(0) { $0 + UInt64($1.weight) } }
}

/// Envoy's `route.v3.RetryPolicy`.
public struct RetryPolicy: Hashable, Sendable {
    /// The `retry_on` conditions Envoy knows for HTTP and gRPC.
    public enum Condition: String, Hashable, Sendable, CaseIterable {
        case fiveXX = "5xx"
        case gatewayError = "gateway-error"
        case reset
        case resetBeforeRequest = "reset-before-request"
        case connectFailure = "connect-failure"
        case envoyRateLimited = "envoy-ratelimited"
        case retriable4xx = "retriable-4xx"
        case refusedStream = "refused-stream"
        case retriableStatusCodes = "retriable-status-codes"
        case retriableHeaders = "retriable-headers"
        case http3PostConnectFailure = "http3-post-connect-failure"
        case grpcCancelled = "cancelled"
        case grpcDeadlineExceeded = "deadline-exceeded"
        case grpcInternal = "internal"
        case grpcResourceExhausted = "resource-exhausted"
        case grpcUnavailable = "unavailable"
    }

    public var retryOn: Set<Condition>
    public var numRetries: Int
    public var perTryTimeout: Duration?
    public var perTryIdleTimeout: Duration?
    public var retriableStatusCodes: Set<Int>
    public var retriableHeaders: [HeaderMatcher]
    /// `envoy.retry_host_predicates.previous_hosts`: avoid hosts already tried.
    public var avoidPreviousHosts: Bool
    public var hostSelectionMaxAttempts: Int
    public var backOffBase: Duration
    public var backOffMax: Duration

    public init(
        retryOn: Set<Condition> = [], numRetries: Int = 1, perTryTimeout: Duration? = nil,
        perTryIdleTimeout: Duration? = nil, retriableStatusCodes: Set<Int> = [], retriableHeaders: [HeaderMatcher] = [],
        avoidPreviousHosts: Bool = false, hostSelectionMaxAttempts: Int = 1, backOffBase: Duration = .milliseconds(25),
        backOffMax: Duration? = nil
    ) {
        self.retryOn = retryOn
        self.numRetries = numRetries
        self.perTryTimeout = perTryTimeout
        self.perTryIdleTimeout = perTryIdleTimeout
        self.retriableStatusCodes = retriableStatusCodes
        self.retriableHeaders = retriableHeaders
        self.avoidPreviousHosts = avoidPreviousHosts
        self.hostSelectionMaxAttempts = hostSelectionMaxAttempts
        self.backOffBase = backOffBase
        self.backOffMax = backOffMax ?? backOffBase * 10
    }
}

/// Envoy's `RouteAction.RequestMirrorPolicy`: a copy of the request sent and its answer ignored.
public struct RequestMirrorPolicy: Hashable, Sendable {
    public var cluster: String
    public var fraction: FractionalPercent

    public init(cluster: String, fraction: FractionalPercent = .all) {
        self.cluster = cluster
        self.fraction = fraction
    }
}

/// Envoy's `RouteAction.HashPolicy`: what a consistent-hash load balancer hashes.
public struct HashPolicy: Hashable, Sendable {
    public enum Source: Hashable, Sendable {
        case header(String)
        /// A cookie; with `ttl` Envoy generates it when missing (not supported: nil only).
        case cookie(name: String)
        case sourceIP
        case queryParameter(String)
    }

    public var source: Source
    /// Stop at this policy when it produced a hash.
    public var terminal: Bool

    public init(source: Source, terminal: Bool = false) {
        self.source = source
        self.terminal = terminal
    }
}

/// Envoy's `route.v3.RedirectAction`.
public struct RedirectAction: Hashable, Sendable {
    public enum PathRewrite: Hashable, Sendable {
        case path(String)
        case prefix(String)
        case regex(pattern: String, substitution: String)
    }

    public var scheme: String?
    public var host: String?
    public var port: UInt16?
    public var path: PathRewrite?
    /// 301 (default), 302, 303, 307 or 308.
    public var status: Int
    public var stripQuery: Bool

    public init(scheme: String? = nil, host: String? = nil, port: UInt16? = nil, path: PathRewrite? = nil,
                status: Int = 301, stripQuery: Bool = false) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.status = status
        self.stripQuery = stripQuery
    }
}
