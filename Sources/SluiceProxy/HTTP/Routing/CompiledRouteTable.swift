import SluiceModel

/// A `RouteConfiguration` compiled once (domains indexed, regexes compiled, Envoy's load-time
/// rules checked) and then asked, request by request, what to do: `decide(_:random:)`.
///
/// Known differences from Envoy 1.40: regexes run on ICU (see `RE2Regex`), without RE2's
/// program-size limit; a header named `host` in a matcher is looked up among the regular
/// headers (Envoy keeps the authority only as `:authority`); route-configuration-level
/// `typed_per_filter_config` and `request_mirror_policies`, weighted-cluster `cluster_header`
/// and `host_rewrite_literal`, `ignore_path_parameters_in_path_matching`, `require_tls`,
/// the `matcher` tree and cluster specifier plugins are not modelled.
public final class CompiledRouteTable: Sendable {
    /// The configuration this table was built from.
    public let config: RouteConfiguration
    private let hosts: VirtualHostTable
    private let routes: [[CompiledRoute]]
    /// Per route, what its decisions share unless a weighted cluster entry adds its own.
    private let shared: [[SharedDecisionParts]]

    private struct SharedDecisionParts: Sendable {
        let requestSteps: [HeaderMutationStep]
        let responseSteps: [HeaderMutationStep]
        let filterOverrides: [String: PerRouteFilterConfig]
    }

    /// Compiles `config`; throws what Envoy would reject, naming the field.
    public init(_ config: RouteConfiguration) throws(RouteTableError) {
        self.config = config
        try Self.validateHeaderMutations(config.headers, path: "")
        var compiled: [[CompiledRoute]] = []
        for (h, host) in config.virtualHosts.enumerated() {
            let hostPath = "virtual_hosts[\(h)]"
            if host.domains.isEmpty {
                throw RouteTableError(path: hostPath + ".domains", "value must contain at least 1 item(s)")
            }
            try Self.validateHeaderMutations(host.headers, path: hostPath + ".")
            var hostRoutes: [CompiledRoute] = []
            for (r, route) in host.routes.enumerated() {
                let routePath = hostPath + ".routes[\(r)]"
                try Self.validateHeaderMutations(route.headers, path: routePath + ".")
                if case .forward(let action) = route.action, case .weighted(let weighted) = action.target {
                    for (i, entry) in weighted.clusters.enumerated() {
                        try Self.validateHeaderMutations(entry.headers, path: routePath + ".route.weighted_clusters.clusters[\(i)].")
                    }
                }
                hostRoutes.append(try CompiledRoute(route, path: routePath))
            }
            compiled.append(hostRoutes)
        }
        routes = compiled
        shared = config.virtualHosts.map { host in
            host.routes.map { route in
                SharedDecisionParts(
                    requestSteps: Self.steps(config, entry: nil, route: route.headers, host: host.headers, response: false),
                    responseSteps: Self.steps(config, entry: nil, route: route.headers, host: host.headers, response: true),
                    filterOverrides: host.filterOverrides.merging(route.filterOverrides) { _, new in new })
            }
        }
        hosts = try VirtualHostTable(
            domains: config.virtualHosts.map(\.domains), routeConfigName: config.name,
            ignorePort: config.ignorePortInHostMatching)
    }

    /// Envoy's `HeaderParser::configure`: `:`-pseudo-headers and `host` can be neither set nor removed.
    private static func validateHeaderMutations(_ m: HeaderMutations, path: String) throws(RouteTableError) {
        for (field, options) in [("request_headers_to_add", m.requestHeadersToAdd), ("response_headers_to_add", m.responseHeadersToAdd)] {
            for (i, option) in options.enumerated() where !HeaderMutator.isModifiable(option.name) {
                throw RouteTableError(path: path + "\(field)[\(i)]", ":-prefixed or host headers may not be modified")
            }
        }
        for (field, names) in [("request_headers_to_remove", m.requestHeadersToRemove), ("response_headers_to_remove", m.responseHeadersToRemove)] {
            for (i, name) in names.enumerated() where !HeaderMutator.isModifiable(name) {
                throw RouteTableError(path: path + "\(field)[\(i)]", ":-prefixed or host headers may not be removed")
            }
        }
    }

    /// The virtual host Envoy would choose for `authority` (index into `config.virtualHosts`).
    public func virtualHostIndex(forAuthority authority: String) -> Int? {
        hosts.select(authority: authority)
    }

    /// Routes one request. `random` is the stream's random value: Envoy uses the same value for
    /// `runtime_fraction` matching and for the `weighted_clusters` pick.
    public func decide(_ request: HTTPRequestContext, random: UInt64) -> RouteDecision {
        guard let hostIndex = hosts.select(authority: request.authority) else { return .noRoute(virtualHost: nil) }
        let host = config.virtualHosts[hostIndex]
        var parsedQuery: QueryParameters?
        let query = { () -> QueryParameters in
            if let parsedQuery { return parsedQuery }
            let parsed = QueryParameters(path: request.path)
            parsedQuery = parsed
            return parsed
        }
        for (index, compiled) in routes[hostIndex].enumerated() where compiled.matches(request, random: random, query: query) {
            return decision(for: compiled, shared: shared[hostIndex][index], host: host, request: request, random: random)
        }
        return .noRoute(virtualHost: host.name)
    }

    private func decision(
        for compiled: CompiledRoute, shared: SharedDecisionParts, host: VirtualHost, request: HTTPRequestContext, random: UInt64
    ) -> RouteDecision {
        let route = compiled.route
        let matched = { MatchedRoute(virtualHostName: host.name, routeName: route.name, responseHeaderMutations: shared.responseSteps) }
        switch route.action {
        case .nonForwarding:
            return .noRoute(virtualHost: host.name)
        case .directResponse(let status, let body):
            let location = status == 201 || (300..<400).contains(status)
                ? RedirectLocation.build(RedirectAction(), request: request, path: request.path) : nil
            return .directResponse(status: status, body: body, location: location, route: matched())
        case .redirect(let redirect):
            let path = RedirectLocation.rewrittenRequestPath(redirect, compiled: compiled, request: request)
            let location = RedirectLocation.build(redirect, request: request, path: path)
            return .redirect(status: redirect.status, location: location, route: matched())
        case .forward(let action):
            var clusterName = ""
            var entry: WeightedHTTPClusters.Entry?
            switch action.target {
            case .cluster(let name): clusterName = name
            case .clusterHeader(let header):
                // Only the first value: the header is untrusted (Envoy's API documentation).
                clusterName = request.headers.first(name: header) ?? ""
            case .weighted(let weighted):
                let picked = WeightedClusterPicker.pick(weighted, request: request, random: random)
                entry = picked
                clusterName = picked.name
            }
            var overrides = shared.filterOverrides
            var requestSteps = shared.requestSteps
            var responseSteps = shared.responseSteps
            if let entry {
                overrides.merge(entry.filterOverrides) { _, new in new }
                requestSteps = Self.steps(config, entry: entry.headers, route: route.headers, host: host.headers, response: false)
                responseSteps = Self.steps(config, entry: entry.headers, route: route.headers, host: host.headers, response: true)
            }
            return .forward(ForwardPlan(
                clusterName: clusterName, action: action, virtualHostName: host.name, routeName: route.name,
                rewrittenPath: rewrittenPath(action, compiled: compiled, request: request),
                hostRewrite: hostRewrite(action, compiled: compiled, request: request),
                retryPolicy: action.retryPolicy ?? host.retryPolicy,
                hashPolicies: action.hashPolicies.isEmpty ? host.hashPolicies : action.hashPolicies,
                mirrors: action.mirrors.isEmpty ? [] : action.mirrors.filter { $0.fraction.includes(random) },
                requestHeaderMutations: requestSteps,
                responseHeaderMutations: responseSteps,
                filterOverrides: overrides,
                includeRequestAttemptCount: host.includeRequestAttemptCount,
                includeAttemptCountInResponse: host.includeAttemptCountInResponse))
        }
    }

    /// Envoy's order: the weighted cluster entry's headers first, then route, virtual host and
    /// route configuration (so the least specific level's `overwrite` wins), or with
    /// `most_specific_header_mutations_wins` route configuration, virtual host, route (the weighted
    /// cluster entry stays first either way, as in Envoy's `WeightedClusterEntry`).
    private static func steps(
        _ config: RouteConfiguration, entry: HeaderMutations?, route: HeaderMutations, host: HeaderMutations, response: Bool
    ) -> [HeaderMutationStep] {
        func step(_ m: HeaderMutations) -> HeaderMutationStep? {
            let s = response
                ? HeaderMutationStep(add: m.responseHeadersToAdd, remove: m.responseHeadersToRemove)
                : HeaderMutationStep(add: m.requestHeadersToAdd, remove: m.requestHeadersToRemove)
            return s.add.isEmpty && s.remove.isEmpty ? nil : s
        }
        let levels = config.mostSpecificHeaderMutationsWins ? [config.headers, host, route] : [route, host, config.headers]
        return ([entry].compactMap { $0 } + levels).compactMap(step)
    }

    private func rewrittenPath(_ action: RouteAction, compiled: CompiledRoute, request: HTTPRequestContext) -> String? {
        if let prefix = action.prefixRewrite, !prefix.isEmpty {
            return PathRewrite.replacePrefix(of: request.path, length: compiled.matchedPathLength(request), with: prefix)
        }
        if let regex = compiled.regexRewrite {
            return PathRewrite.replacePathKeepingQuery(
                request.path, with: regex.replaceAll(request.pathWithoutQuery, with: action.regexRewriteSubstitution))
        }
        return nil
    }

    private func hostRewrite(_ action: RouteAction, compiled: CompiledRoute, request: HTTPRequestContext) -> HostRewritePlan? {
        switch action.hostRewrite {
        case nil: return nil
        case .literal(let host): return host.isEmpty ? nil : .set(host)
        case .autoHost: return .autoHost
        case .header(let name): return .fromHeader(name)
        case .pathRegex(_, let substitution):
            guard let regex = compiled.hostPathRegex else { return nil }
            let host = regex.replaceAll(request.pathWithoutQuery, with: substitution)
            return host.isEmpty ? nil : .set(host)
        }
    }
}

/// Byte-wise path edits as Envoy does them on `:path`.
enum PathRewrite {
    /// Replaces the first `length` bytes of `path` (query included in what follows) with `prefix`.
    static func replacePrefix(of path: String, length: Int, with prefix: String) -> String {
        let bytes = Array(path.utf8)
        let cut = min(length, bytes.count)
        return prefix + String(decoding: bytes[cut...], as: UTF8.self)
    }

    /// Replaces the path part before `?`/`#` with `newPath`, keeping query and fragment.
    static func replacePathKeepingQuery(_ path: String, with newPath: String) -> String {
        guard let end = path.firstIndex(where: { $0 == "?" || $0 == "#" }) else { return newPath }
        return newPath + path[end...]
    }
}

/// Envoy's `weighted_clusters` pick: the value (from `header_name` when that header has exactly
/// one value that parses as an unsigned integer, else the stream's random value) modulo the total
/// weight selects the entry whose `[begin, begin + weight)` interval holds it, in configured order.
enum WeightedClusterPicker {
    static func pick(_ weighted: WeightedHTTPClusters, request: HTTPRequestContext, random: UInt64) -> WeightedHTTPClusters.Entry {
        var value = random
        if let header = weighted.randomValueHeader, !header.isEmpty {
            let values = request.headers[header]
            if values.count == 1, let parsed = parseEnvoyUInt64(values[0]) { value = parsed }
        }
        let total = weighted.totalWeight
        let selected = value % total
        var begin: UInt64 = 0
        for entry in weighted.clusters {
            let end = begin + UInt64(entry.weight)
            if selected >= begin && selected < end { return entry }
            begin = end
        }
        return weighted.clusters[weighted.clusters.count - 1]
    }
}
