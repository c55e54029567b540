import NIOHTTP1
import SluiceModel

/// What the route table decided for one request.
public enum RouteDecision: Sendable {
    /// Send the request upstream as the plan says.
    case forward(ForwardPlan)
    /// Answer with a redirect: `status` (301, 302, 303, 307 or 308) and this `Location`.
    case redirect(status: Int, location: String, route: MatchedRoute)
    /// Answer locally (`direct_response`). Envoy adds `Location` (the request's own URL) when the
    /// status is 201 or 3xx: `location` carries it then, else nil.
    case directResponse(status: Int, body: String?, location: String?, route: MatchedRoute)
    /// No virtual host or no route matched, or the route has `non_forwarding_action`: Envoy's
    /// router answers 404 with response flag `NR` (details `route_not_found`).
    case noRoute(virtualHost: String?)
}

/// The virtual host and route that produced a local answer, with the response header
/// mutations Envoy applies to that answer.
public struct MatchedRoute: Sendable, Hashable {
    public var virtualHostName: String
    public var routeName: String
    /// In application order (see `HeaderMutationStep`).
    public var responseHeaderMutations: [HeaderMutationStep]
}

/// How the upstream request's `:authority` is rewritten.
public enum HostRewritePlan: Sendable, Hashable {
    /// `host_rewrite_literal`, or `host_rewrite_path_regex` already evaluated on the path.
    case set(String)
    /// `host_rewrite_header`: the first value of this header, read after the request header
    /// mutations ran (as Envoy does); no rewrite when missing or empty.
    case fromHeader(String)
    /// `auto_host_rewrite`: the caller sets the chosen upstream host's hostname.
    case autoHost
}

/// Everything the router needs to forward one request.
/// A class: a stream keeps its plan and passes it around, and a struct of this many fields
/// costs a retain and a release per field on every copy.
public final class ForwardPlan: Sendable {
    /// The cluster to use. Empty when `cluster_header` named no cluster (missing header): the
    /// caller then answers `action.clusterNotFoundStatus` (503 by default) with flag `NC`, as it
    /// does for any cluster that does not exist.
    public let clusterName: String
    /// The route's action (timeouts, upgrade configs, ...).
    public let action: RouteAction
    public let virtualHostName: String
    public let routeName: String
    /// The new `:path` (query kept) when `prefix_rewrite` or `regex_rewrite` applies, else nil.
    /// When set, Envoy also sends the old path as `x-envoy-original-path` (unless suppressed).
    public let rewrittenPath: String?
    public let hostRewrite: HostRewritePlan?
    /// Route's retry policy, else the virtual host's.
    public let retryPolicy: RetryPolicy?
    /// Route's hash policies, else the virtual host's.
    public let hashPolicies: [HashPolicy]
    /// The route's mirror policies that take this request: Envoy samples each policy's fraction
    /// with the stream's random value (`random % denominator < numerator`).
    public let mirrors: [RequestMirrorPolicy]
    /// Request header mutations in application order (see `HeaderMutationStep`).
    public let requestHeaderMutations: [HeaderMutationStep]
    /// Response header mutations in application order.
    public let responseHeaderMutations: [HeaderMutationStep]
    /// Per-filter overrides by filter name: weighted cluster entry, else route, else virtual host.
    public let filterOverrides: [String: PerRouteFilterConfig]
    public let includeRequestAttemptCount: Bool
    public let includeAttemptCountInResponse: Bool

    /// A plan as the route table decides it for one request.
    public init(
        clusterName: String,
        action: RouteAction,
        virtualHostName: String,
        routeName: String,
        rewrittenPath: String?,
        hostRewrite: HostRewritePlan?,
        retryPolicy: RetryPolicy?,
        hashPolicies: [HashPolicy],
        mirrors: [RequestMirrorPolicy],
        requestHeaderMutations: [HeaderMutationStep],
        responseHeaderMutations: [HeaderMutationStep],
        filterOverrides: [String: PerRouteFilterConfig],
        includeRequestAttemptCount: Bool,
        includeAttemptCountInResponse: Bool
    ) {
        self.clusterName = clusterName
        self.action = action
        self.virtualHostName = virtualHostName
        self.routeName = routeName
        self.rewrittenPath = rewrittenPath
        self.hostRewrite = hostRewrite
        self.retryPolicy = retryPolicy
        self.hashPolicies = hashPolicies
        self.mirrors = mirrors
        self.requestHeaderMutations = requestHeaderMutations
        self.responseHeaderMutations = responseHeaderMutations
        self.filterOverrides = filterOverrides
        self.includeRequestAttemptCount = includeRequestAttemptCount
        self.includeAttemptCountInResponse = includeAttemptCountInResponse
    }

    /// The consistent-hash key for this request from `hashPolicies` (nil when none applies).
    public func hash(for request: HTTPRequestContext) -> UInt64? {
        RequestHash.compute(hashPolicies, for: request)
    }

    /// The authority to set upstream, given the request headers after mutations; nil keeps it
    /// (and for `.autoHost`, which the caller resolves from the chosen host).
    public func rewrittenHost(after headers: HTTPHeaders) -> String? {
        switch hostRewrite {
        case .set(let host): return host.isEmpty ? nil : host
        case .fromHeader(let name):
            guard let value = headers.first(name: name), !value.isEmpty else { return nil }
            return value
        case .autoHost, nil: return nil
        }
    }
}

/// One level's header additions and removals, applied removals first (Envoy's `HeaderParser`).
public struct HeaderMutationStep: Sendable, Hashable {
    public var add: [HeaderValueOption]
    public var remove: [String]

    public init(add: [HeaderValueOption], remove: [String]) {
        self.add = add
        self.remove = remove
    }
}
