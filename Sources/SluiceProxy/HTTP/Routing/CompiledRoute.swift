import SluiceModel

/// One route with its matchers compiled and its rewrites prepared.
struct CompiledRoute: Sendable {
    enum PathRule: Sendable {
        case prefix(String)
        case path(String)
        case regex(RE2Regex)
        case separatedPrefix(String)
    }

    let route: Route
    let pathRule: PathRule
    let caseSensitive: Bool
    let headers: [CompiledHeaderMatcher]
    let queryParameters: [CompiledQueryParameterMatcher]
    let grpc: Bool
    let fraction: FractionalPercent?
    /// `regex_rewrite` of a forwarding route.
    let regexRewrite: RE2Regex?
    /// `host_rewrite_path_regex`.
    let hostPathRegex: RE2Regex?
    /// `regex_rewrite` of a redirect.
    let redirectRegex: RE2Regex?

    init(_ route: Route, path: String) throws(RouteTableError) {
        self.route = route
        let match = route.match
        caseSensitive = match.caseSensitive
        switch match.path {
        case .prefix(let p): pathRule = .prefix(p)
        case .path(let p): pathRule = .path(p)
        case .safeRegex(let pattern): pathRule = .regex(try compileRegex(pattern, path: path + ".match.safe_regex"))
        case .pathSeparatedPrefix(let p):
            // Proto rule `^[^?#]+[^?#/]$`: no query or fragment characters, no trailing slash.
            if p.isEmpty || p.contains("?") || p.contains("#") || p.hasSuffix("/") {
                throw RouteTableError(path: path + ".match.path_separated_prefix",
                                      "value '\(p)' must not be empty, contain '?' or '#', or end with '/'")
            }
            pathRule = .separatedPrefix(p)
        }
        var headerMatchers: [CompiledHeaderMatcher] = []
        for (i, h) in match.headers.enumerated() {
            headerMatchers.append(try CompiledHeaderMatcher(h, path: path + ".match.headers[\(i)]"))
        }
        headers = headerMatchers
        var queryMatchers: [CompiledQueryParameterMatcher] = []
        for (i, q) in match.queryParameters.enumerated() {
            queryMatchers.append(try CompiledQueryParameterMatcher(q, path: path + ".match.query_parameters[\(i)]"))
        }
        queryParameters = queryMatchers
        grpc = match.grpc
        if let f = match.fraction, ![100, 10_000, 1_000_000].contains(f.denominator) {
            throw RouteTableError(path: path + ".match.runtime_fraction.default_value.denominator",
                                  "must be 100, 10000 or 1000000, not \(f.denominator)")
        }
        fraction = match.fraction

        var regexRewrite: RE2Regex?
        var hostPathRegex: RE2Regex?
        var redirectRegex: RE2Regex?
        switch route.action {
        case .forward(let action):
            let actionPath = path + ".route"
            if action.prefixRewrite.map({ !$0.isEmpty }) == true && action.regexRewritePattern != nil {
                throw RouteTableError(path: actionPath, "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy")
            }
            if let pattern = action.regexRewritePattern {
                regexRewrite = try compileRegex(pattern, path: actionPath + ".regex_rewrite.pattern")
            }
            if case .pathRegex(let pattern, _) = action.hostRewrite {
                hostPathRegex = try compileRegex(pattern, path: actionPath + ".host_rewrite_path_regex.pattern")
            }
            try Self.validateTarget(action.target, path: actionPath, routeName: route.name)
            for (i, mirror) in action.mirrors.enumerated() where mirror.cluster.isEmpty {
                throw RouteTableError(path: actionPath + ".request_mirror_policies[\(i)]",
                                      "Exactly one of cluster or cluster_header in request mirror policy need to be specified")
            }
            if ![500, 404, 503].contains(action.clusterNotFoundStatus) {
                throw RouteTableError(path: actionPath + ".cluster_not_found_response_code",
                                      "must be 503, 404 or 200 (SERVICE_UNAVAILABLE, NOT_FOUND or INTERNAL_SERVER_ERROR), not \(action.clusterNotFoundStatus)")
            }
        case .redirect(let redirect):
            if case .regex(let pattern, _) = redirect.path {
                redirectRegex = try compileRegex(pattern, path: path + ".redirect.regex_rewrite.pattern")
            }
            if ![301, 302, 303, 307, 308].contains(redirect.status) {
                throw RouteTableError(path: path + ".redirect.response_code", "\(redirect.status) is not a redirect response code")
            }
        case .directResponse(let status, let body):
            if !(200..<600).contains(status) {
                throw RouteTableError(path: path + ".direct_response.status", "value must be inside range [200, 600), not \(status)")
            }
            if let body, body.utf8.count > 4096 {
                throw RouteTableError(path: path + ".direct_response.body",
                                      "response body size is \(body.utf8.count) bytes; maximum is 4096")
            }
        case .nonForwarding:
            break
        }
        self.regexRewrite = regexRewrite
        self.hostPathRegex = hostPathRegex
        self.redirectRegex = redirectRegex
    }

    private static func validateTarget(_ target: RouteAction.Target, path: String, routeName: String) throws(RouteTableError) {
        switch target {
        case .cluster(let name):
            if name.isEmpty { throw RouteTableError(path: path + ".cluster", "value length must be at least 1 characters") }
        case .clusterHeader(let name):
            if name.isEmpty { throw RouteTableError(path: path + ".cluster_header", "value length must be at least 1 characters") }
        case .weighted(let weighted):
            if weighted.clusters.isEmpty {
                throw RouteTableError(path: path + ".weighted_clusters.clusters", "value must contain at least 1 item(s)")
            }
            for (i, entry) in weighted.clusters.enumerated() where entry.name.isEmpty {
                throw RouteTableError(path: path + ".weighted_clusters.clusters[\(i)]",
                                      "At least one of name or cluster_header need to be specified")
            }
            let total = weighted.totalWeight
            if total > UInt64(UInt32.max) {
                throw RouteTableError(path: path + ".weighted_clusters",
                                      "The sum of weights of all weighted clusters of route \(routeName) exceeds \(UInt32.max)")
            }
            if total == 0 {
                throw RouteTableError(path: path + ".weighted_clusters", "Sum of weights in the weighted_cluster must be greater than 0.")
            }
        }
    }

    /// Envoy's `matchRoute` plus the path rule; `random` is the stream's random value.
    func matches(_ request: HTTPRequestContext, random: UInt64, query: () -> QueryParameters) -> Bool {
        if let fraction, !fraction.includes(random) { return false }
        if grpc && !GRPCContentType.isGRPC(request) { return false }
        for matcher in headers where !matcher.matches(request) { return false }
        if !queryParameters.isEmpty {
            let parameters = query()
            for matcher in queryParameters where !matcher.matches(parameters) { return false }
        }
        return matchesPath(request.pathWithoutQuery)
    }

    private func matchesPath(_ path: Substring) -> Bool {
        switch pathRule {
        case .prefix(let prefix):
            return caseSensitive ? path.hasPrefixBytes(prefix) : path.asciiLowercasedString.hasPrefixBytes(prefix.asciiLowercased)
        case .path(let exact):
            return caseSensitive ? path.utf8.elementsEqual(exact.utf8) : path.asciiLowercasedString == exact.asciiLowercased
        case .regex(let re):
            return re.fullMatch(path)
        case .separatedPrefix(let prefix):
            let candidate = caseSensitive ? String(path) : path.asciiLowercasedString
            let wanted = caseSensitive ? prefix : prefix.asciiLowercased
            guard candidate.hasPrefixBytes(wanted) else { return false }
            let bytes = candidate.utf8
            let n = wanted.utf8.count
            return bytes.count == n || bytes[bytes.index(bytes.startIndex, offsetBy: n)] == UInt8(ascii: "/")
        }
    }

    /// The part of the path that `prefix_rewrite` replaces: the configured prefix or path, or the
    /// whole path without query for regex routes.
    func matchedPathLength(_ request: HTTPRequestContext) -> Int {
        switch pathRule {
        case .prefix(let p), .path(let p), .separatedPrefix(let p): return p.utf8.count
        case .regex: return request.pathWithoutQuery.utf8.count
        }
    }
}

/// Envoy's `Grpc::Common::isGrpcRequestHeaders`: `content-type` is `application/grpc` or starts
/// with `application/grpc+` (so `application/grpc-web` is not gRPC).
enum GRPCContentType {
    static func isGRPC(_ request: HTTPRequestContext) -> Bool {
        guard let type = request.headers.first(name: "content-type") else { return false }
        let base = "application/grpc"
        guard type.hasPrefixBytes(base) else { return false }
        let rest = type.utf8.dropFirst(base.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "+")
    }
}

extension Substring {
    var asciiLowercasedString: String { String(self).asciiLowercased }
}
