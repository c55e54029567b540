/// Envoy's `route.v3.RouteConfiguration`: virtual hosts chosen by the request's authority.
public struct RouteConfiguration: Hashable, Sendable {
    public var name: String
    public var virtualHosts: [VirtualHost]
    public var headers: HeaderMutations
    /// Headers removed from requests that come from outside (not an internal address).
    public var internalOnlyHeaders: [String]
    /// Apply the most specific level's header mutations last (route wins over virtual host).
    public var mostSpecificHeaderMutationsWins: Bool
    /// Not-found clusters are checked when the configuration is loaded (`validate_clusters`).
    public var validateClusters: Bool
    /// `ignore_port_in_host_matching`: drop the authority's port before choosing a virtual host.
    public var ignorePortInHostMatching: Bool = false

    public init(
        name: String, virtualHosts: [VirtualHost] = [], headers: HeaderMutations = HeaderMutations(),
        internalOnlyHeaders: [String] = [], mostSpecificHeaderMutationsWins: Bool = false, validateClusters: Bool = false
    ) {
        self.name = name
        self.virtualHosts = virtualHosts
        self.headers = headers
        self.internalOnlyHeaders = internalOnlyHeaders.map { $0.lowercased() }
        self.mostSpecificHeaderMutationsWins = mostSpecificHeaderMutationsWins
        self.validateClusters = validateClusters
    }

    /// Every cluster name a route can send to (mirrors included), for warming and validation.
    public var clusterNames: Set<String> {
        var names = Set<String>()
        for host in virtualHosts {
            for route in host.routes {
                guard case .forward(let action) = route.action else { continue }
                switch action.target {
                case .cluster(let name): names.insert(name)
                case .weighted(let clusters): names.formUnion(clusters.clusters.map(\.name))
                case .clusterHeader: break
                }
                names.formUnion(action.mirrors.map(\.cluster))
            }
        }
        return names
    }
}

/// Envoy's `route.v3.VirtualHost`.
public struct VirtualHost: Hashable, Sendable {
    public var name: String
    /// Exact names, `*.suffix`, `prefix.*`, or `*`; each may carry a `:port`.
    public var domains: [String]
    public var routes: [Route]
    public var headers: HeaderMutations
    public var retryPolicy: RetryPolicy?
    public var hashPolicies: [HashPolicy]
    /// Filter overrides by filter name (`typed_per_filter_config`).
    public var filterOverrides: [String: PerRouteFilterConfig]
    public var includeRequestAttemptCount: Bool
    public var includeAttemptCountInResponse: Bool

    public init(
        name: String, domains: [String], routes: [Route] = [], headers: HeaderMutations = HeaderMutations(),
        retryPolicy: RetryPolicy? = nil, hashPolicies: [HashPolicy] = [],
        filterOverrides: [String: PerRouteFilterConfig] = [:], includeRequestAttemptCount: Bool = false,
        includeAttemptCountInResponse: Bool = false
    ) {
        self.name = name
        self.domains = domains
        self.routes = routes
        self.headers = headers
        self.retryPolicy = retryPolicy
        self.hashPolicies = hashPolicies
        self.filterOverrides = filterOverrides
        self.includeRequestAttemptCount = includeRequestAttemptCount
        self.includeAttemptCountInResponse = includeAttemptCountInResponse
    }
}

/// Envoy's `route.v3.Route`.
public struct Route: Hashable, Sendable {
    public var name: String
    public var match: RouteMatch
    public var action: RouteActionKind
    public var headers: HeaderMutations
    public var filterOverrides: [String: PerRouteFilterConfig]

    public init(
        name: String = "", match: RouteMatch, action: RouteActionKind, headers: HeaderMutations = HeaderMutations(),
        filterOverrides: [String: PerRouteFilterConfig] = [:]
    ) {
        self.name = name
        self.match = match
        self.action = action
        self.headers = headers
        self.filterOverrides = filterOverrides
    }
}

/// Envoy's `route.v3.RouteMatch`.
public struct RouteMatch: Hashable, Sendable {
    public enum PathRule: Hashable, Sendable {
        case prefix(String)
        case path(String)
        /// RE2, matched against the path without the query string.
        case safeRegex(String)
        /// A prefix that must end at a `/`, `?`, `#` or the end of the path.
        case pathSeparatedPrefix(String)
    }

    public var path: PathRule
    public var caseSensitive: Bool
    public var headers: [HeaderMatcher]
    public var queryParameters: [QueryParameterMatcher]
    /// Only gRPC requests (`content-type: application/grpc…`).
    public var grpc: Bool
    /// `runtime_fraction.default_value`: the share of requests this route takes.
    public var fraction: FractionalPercent?

    public init(
        path: PathRule, caseSensitive: Bool = true, headers: [HeaderMatcher] = [],
        queryParameters: [QueryParameterMatcher] = [], grpc: Bool = false, fraction: FractionalPercent? = nil
    ) {
        self.path = path
        self.caseSensitive = caseSensitive
        self.headers = headers
        self.queryParameters = queryParameters
        self.grpc = grpc
        self.fraction = fraction
    }
}

/// What a matched route does.
public enum RouteActionKind: Hashable, Sendable {
    case forward(RouteAction)
    case redirect(RedirectAction)
    case directResponse(status: Int, body: String?)
    /// `non_forwarding_action`: no route for the router filter (404 local reply).
    case nonForwarding
}
