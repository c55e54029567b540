/// One entry of the HCM's `http_filters`.
public struct HTTPFilter: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case router(RouterConfig)
        case fault(FaultConfig)
        case rbac(RBACFilterConfig)
        case localRateLimit(LocalRateLimitConfig)
        /// The policy comes from the route or virtual host (`typed_per_filter_config`).
        case cors
    }

    /// The filter's name, which `typed_per_filter_config` keys refer to.
    public var name: String
    public var kind: Kind
    /// `disabled: true`: the filter is skipped unless a route or virtual host gives it a
    /// per-filter configuration (other than `FilterConfig{disabled: true}`).
    public var disabledByDefault: Bool

    public init(name: String, kind: Kind, disabledByDefault: Bool = false) {
        self.name = name
        self.kind = kind
        self.disabledByDefault = disabledByDefault
    }

    public static func router(_ config: RouterConfig = RouterConfig()) -> HTTPFilter {
        HTTPFilter(name: "envoy.filters.http.router", kind: .router(config))
    }
}

/// `envoy.extensions.filters.http.router.v3.Router`.
public struct RouterConfig: Hashable, Sendable {
    /// Don't add `x-envoy-upstream-service-time` and friends.
    public var suppressEnvoyHeaders: Bool
    public var respectExpectedRequestTimeout: Bool

    public init(suppressEnvoyHeaders: Bool = false, respectExpectedRequestTimeout: Bool = false) {
        self.suppressEnvoyHeaders = suppressEnvoyHeaders
        self.respectExpectedRequestTimeout = respectExpectedRequestTimeout
    }
}

/// A filter's per-route or per-virtual-host override (`typed_per_filter_config`).
public enum PerRouteFilterConfig: Hashable, Sendable {
    case fault(FaultConfig)
    case rbac(RBACFilterConfig?)
    case localRateLimit(LocalRateLimitConfig)
    case cors(CORSPolicy)
    /// `envoy.config.route.v3.FilterConfig` with `disabled: true`.
    case disabled
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault`.
public struct FaultConfig: Hashable, Sendable {
    public struct Delay: Hashable, Sendable {
        /// nil: the `x-envoy-fault-delay-request` header gives the delay.
        public var fixed: Duration?
        public var percentage: FractionalPercent
        public init(fixed: Duration?, percentage: FractionalPercent) {
            self.fixed = fixed
            self.percentage = percentage
        }
    }

    public struct Abort: Hashable, Sendable {
        public enum Kind: Hashable, Sendable {
            case httpStatus(Int)
            case grpcStatus(Int)
            /// `x-envoy-fault-abort-request` / `-grpc-request` give the status.
            case fromHeader
        }
        public var kind: Kind
        public var percentage: FractionalPercent
        public init(kind: Kind, percentage: FractionalPercent) {
            self.kind = kind
            self.percentage = percentage
        }
    }

    public var delay: Delay?
    public var abort: Abort?
    /// Only requests to this cluster.
    public var upstreamCluster: String?
    /// Only requests matching every one of these.
    public var headers: [HeaderMatcher]
    public var downstreamNodes: [String]
    public var maxActiveFaults: Int?

    public init(delay: Delay? = nil, abort: Abort? = nil, upstreamCluster: String? = nil, headers: [HeaderMatcher] = [],
                downstreamNodes: [String] = [], maxActiveFaults: Int? = nil) {
        self.delay = delay
        self.abort = abort
        self.upstreamCluster = upstreamCluster
        self.headers = headers
        self.downstreamNodes = downstreamNodes
        self.maxActiveFaults = maxActiveFaults
    }
}

/// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`: the in-proxy quota.
public struct LocalRateLimitConfig: Hashable, Sendable {
    public var statPrefix: String
    /// nil: the filter counts but never limits (no bucket configured).
    public var tokenBucket: TokenBucket?
    public var filterEnabled: FractionalPercent
    public var filterEnforced: FractionalPercent
    /// Status of a limited request (Envoy default 429).
    public var status: Int
    public var responseHeadersToAdd: [HeaderValueOption]
    public var requestHeadersToAddWhenNotEnforced: [HeaderValueOption]
    public var perDownstreamConnection: Bool
    /// `x-ratelimit-*` headers (draft 03) on responses.
    public var enableXRateLimitHeaders: Bool

    public init(
        statPrefix: String, tokenBucket: TokenBucket?, filterEnabled: FractionalPercent = .none,
        filterEnforced: FractionalPercent = .none, status: Int = 429, responseHeadersToAdd: [HeaderValueOption] = [],
        requestHeadersToAddWhenNotEnforced: [HeaderValueOption] = [], perDownstreamConnection: Bool = false,
        enableXRateLimitHeaders: Bool = false
    ) {
        self.statPrefix = statPrefix
        self.tokenBucket = tokenBucket
        self.filterEnabled = filterEnabled
        self.filterEnforced = filterEnforced
        self.status = status
        self.responseHeadersToAdd = responseHeadersToAdd
        self.requestHeadersToAddWhenNotEnforced = requestHeadersToAddWhenNotEnforced
        self.perDownstreamConnection = perDownstreamConnection
        self.enableXRateLimitHeaders = enableXRateLimitHeaders
    }
}

/// Envoy's `type.v3.TokenBucket`.
public struct TokenBucket: Hashable, Sendable {
    public var maxTokens: Int
    public var tokensPerFill: Int
    public var fillInterval: Duration

    public init(maxTokens: Int, tokensPerFill: Int = 1, fillInterval: Duration) {
        self.maxTokens = maxTokens
        self.tokensPerFill = tokensPerFill
        self.fillInterval = fillInterval
    }
}

/// Envoy's `route.v3.CorsPolicy`.
public struct CORSPolicy: Hashable, Sendable {
    public var allowOrigins: [StringMatcher]
    public var allowMethods: String?
    public var allowHeaders: String?
    public var exposeHeaders: String?
    public var maxAge: String?
    public var allowCredentials: Bool?
    public var allowPrivateNetworkAccess: Bool?
    public var filterEnabled: FractionalPercent
    public var shadowEnabled: FractionalPercent?
    public var forwardNotMatchingPreflights: Bool

    public init(
        allowOrigins: [StringMatcher] = [], allowMethods: String? = nil, allowHeaders: String? = nil,
        exposeHeaders: String? = nil, maxAge: String? = nil, allowCredentials: Bool? = nil,
        allowPrivateNetworkAccess: Bool? = nil, filterEnabled: FractionalPercent = .all,
        shadowEnabled: FractionalPercent? = nil, forwardNotMatchingPreflights: Bool = true
    ) {
        self.allowOrigins = allowOrigins
        self.allowMethods = allowMethods
        self.allowHeaders = allowHeaders
        self.exposeHeaders = exposeHeaders
        self.maxAge = maxAge
        self.allowCredentials = allowCredentials
        self.allowPrivateNetworkAccess = allowPrivateNetworkAccess
        self.filterEnabled = filterEnabled
        self.shadowEnabled = shadowEnabled
        self.forwardNotMatchingPreflights = forwardNotMatchingPreflights
    }
}
