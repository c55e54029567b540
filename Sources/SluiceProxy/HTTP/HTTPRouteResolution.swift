import NIOHTTP1
import SluiceModel

/// What the route table decided for a request, in the terms the router acts on.
enum HTTPRouteResolution {
    case forward(ForwardTarget)
    /// Redirects, direct responses and missing routes.
    case reply(LocalReply)
}

/// Where and how the router forwards a request.
struct ForwardTarget {
    var clusterName: String
    var routeName: String
    var virtualHostName: String
    var action: RouteAction
    /// Path after prefix/regex rewrites (query kept); nil keeps the request's.
    var rewrittenPath: String?
    /// Authority after a host rewrite; nil keeps the request's.
    var rewrittenAuthority: String?
    /// `auto_host_rewrite`: the upstream host's name becomes the authority.
    var autoHostRewrite: Bool
    var retryPolicy: RetryPolicy?
    var hashKey: UInt64?
    var includeAttemptCount: Bool
    var includeAttemptCountInResponse: Bool
    /// Applies the request header mutations of every level, in Envoy's order.
    var mutateRequest: (inout HTTPHeaders, HTTPRequestContext) -> Void
    /// Applies the response header mutations of every level, in Envoy's order.
    var mutateResponse: (inout HTTPHeaders, HTTPRequestContext) -> Void
    /// Per-filter overrides in effect for this route, by filter name.
    var filterOverrides: [String: PerRouteFilterConfig]
}
