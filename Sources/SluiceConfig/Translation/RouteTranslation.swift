import Foundation
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// `envoy.config.route.v3.RouteConfiguration`, inline in an HCM or delivered over RDS.
extension TranslationContext {
    /// Translates a route table; `inline` decides Envoy's `validate_clusters` default (true for
    /// a static route table, false for RDS).
    mutating func routeConfiguration(_ config: Envoy_Config_Route_V3_RouteConfiguration, path: String, inline: Bool)
        -> RouteConfiguration?
    {
        let before = issues.count
        var hosts: [VirtualHost] = []
        var hostNames: [String: Int] = [:]
        // Envoy's default bound on inline direct-response bodies.
        let bodyLimit = config.hasMaxDirectResponseBodySizeBytes ? Int(config.maxDirectResponseBodySizeBytes.value) : 4096
        var domains: [String: String] = [:]
        for (index, raw) in config.virtualHosts.enumerated() {
            let hostPath = child(path, "virtual_hosts[\(index)]")
            if let first = hostNames[raw.name] {
                invalid(child(hostPath, "name"),
                        "Only unique values for name are permitted. Duplicate entry of virtual host \(raw.name) (also virtual_hosts[\(first)])")
            }
            hostNames[raw.name] = index
            for (domainIndex, domain) in raw.domains.enumerated() {
                let key = domain.lowercased()
                if let other = domains[key] {
                    invalid(child(hostPath, "domains[\(domainIndex)]"),
                            "Only unique values for domains are permitted. Duplicate entry of domain \(domain) in route \(config.name) (also in virtual host \(other))")
                }
                domains[key] = raw.name
            }
            if let host = virtualHost(raw, path: hostPath, bodyLimit: bodyLimit) { hosts.append(host) }
        }
        let headers = headerMutations(
            requestAdd: config.requestHeadersToAdd, requestRemove: config.requestHeadersToRemove,
            responseAdd: config.responseHeadersToAdd, responseRemove: config.responseHeadersToRemove, path: path)
        for (index, name) in config.internalOnlyHeaders.enumerated() where name.isEmpty {
            invalid(child(path, "internal_only_headers[\(index)]"), "the header name must not be empty")
        }
        guard !hasErrors(since: before) else { return nil }
        return RouteConfiguration(
            name: config.name, virtualHosts: hosts, headers: headers, internalOnlyHeaders: config.internalOnlyHeaders,
            mostSpecificHeaderMutationsWins: config.mostSpecificHeaderMutationsWins,
            validateClusters: config.hasValidateClusters ? config.validateClusters.value : inline)
    }

    private mutating func virtualHost(_ host: Envoy_Config_Route_V3_VirtualHost, path: String, bodyLimit: Int) -> VirtualHost? {
        if host.name.isEmpty { invalid(child(path, "name"), "a virtual host needs a name") }
        if host.domains.isEmpty { invalid(child(path, "domains"), "a virtual host needs at least one domain") }
        var routes: [Route] = []
        for (index, raw) in host.routes.enumerated() {
            if let route = route(raw, path: child(path, "routes[\(index)]"), bodyLimit: bodyLimit) { routes.append(route) }
        }
        var filterOverrides = perFilterConfigs(host.typedPerFilterConfig, path: child(path, "typed_per_filter_config"))
        if host.hasCors, filterOverrides["envoy.filters.http.cors"] == nil {
            // The deprecated in-line CORS policy acts as the CORS filter's per-host configuration.
            filterOverrides["envoy.filters.http.cors"] = .cors(corsPolicy(host.cors, path: child(path, "cors")))
        }
        return VirtualHost(
            name: host.name, domains: host.domains, routes: routes,
            headers: headerMutations(
                requestAdd: host.requestHeadersToAdd, requestRemove: host.requestHeadersToRemove,
                responseAdd: host.responseHeadersToAdd, responseRemove: host.responseHeadersToRemove, path: path),
            retryPolicy: host.hasRetryPolicy ? retryPolicy(host.retryPolicy, path: child(path, "retry_policy")) : nil,
            hashPolicies: [],
            filterOverrides: filterOverrides,
            includeRequestAttemptCount: host.includeRequestAttemptCount,
            includeAttemptCountInResponse: host.includeAttemptCountInResponse)
    }

    private mutating func route(_ route: Envoy_Config_Route_V3_Route, path: String, bodyLimit: Int) -> Route? {
        let before = issues.count
        guard route.hasMatch else {
            invalid(child(path, "match"), "a route needs a match")
            return nil
        }
        let match = routeMatch(route.match, path: child(path, "match"))
        var action: RouteActionKind?
        switch route.action {
        case .route(let forward)?:
            action = routeAction(forward, path: child(path, "route")).map(RouteActionKind.forward)
        case .redirect(let redirect)?:
            action = redirectAction(redirect, path: child(path, "redirect")).map(RouteActionKind.redirect)
        case .directResponse(let direct)?:
            action = directResponse(direct, path: child(path, "direct_response"), bodyLimit: bodyLimit)
        case .nonForwardingAction?:
            action = .nonForwarding
        case .filterAction?:
            break  // reported by the support check
        case nil:
            invalid(path, "a route needs route, redirect, direct_response or non_forwarding_action")
        }
        let headers = headerMutations(
            requestAdd: route.requestHeadersToAdd, requestRemove: route.requestHeadersToRemove,
            responseAdd: route.responseHeadersToAdd, responseRemove: route.responseHeadersToRemove, path: path)
        let overrides = perFilterConfigs(route.typedPerFilterConfig, path: child(path, "typed_per_filter_config"))
        guard let match, let action, !hasErrors(since: before) else { return nil }
        return Route(name: route.name, match: match, action: action, headers: headers, filterOverrides: overrides)
    }

    private mutating func routeMatch(_ match: Envoy_Config_Route_V3_RouteMatch, path: String) -> RouteMatch? {
        let rule: RouteMatch.PathRule
        switch match.pathSpecifier {
        case .prefix(let prefix)?: rule = .prefix(prefix)
        case .path(let exact)?: rule = .path(exact)
        case .safeRegex(let regexMatcher)?:
            guard let pattern = regex(regexMatcher, path: child(path, "safe_regex")) else { return nil }
            rule = .safeRegex(pattern)
        case .pathSeparatedPrefix(let prefix)?:
            // Envoy: no query, fragment or trailing slash in the prefix.
            if prefix.contains("?") || prefix.contains("#") || (prefix.count > 1 && prefix.hasSuffix("/")) {
                invalid(child(path, "path_separated_prefix"), "\"\(prefix)\" must not contain ? or # nor end with /")
                return nil
            }
            rule = .pathSeparatedPrefix(prefix)
        case .connectMatcher?, .pathMatchPolicy?:
            return nil  // reported by the support check
        case nil:
            invalid(path, "a route match needs prefix, path, safe_regex or path_separated_prefix")
            return nil
        }
        var queries: [QueryParameterMatcher] = []
        for (index, query) in match.queryParameters.enumerated() {
            let queryPath = child(path, "query_parameters[\(index)]")
            if query.name.isEmpty { invalid(child(queryPath, "name"), "the parameter name must not be empty") }
            switch query.queryParameterMatchSpecifier {
            case .stringMatch(let string)?:
                if let matcher = stringMatcher(string, path: child(queryPath, "string_match")) {
                    queries.append(QueryParameterMatcher(name: query.name, matcher: matcher))
                }
            case .presentMatch(let present)?:
                queries.append(QueryParameterMatcher(name: query.name, presentMatch: present))
            case nil:
                // Envoy: no specifier matches when the parameter is present.
                queries.append(QueryParameterMatcher(name: query.name, presentMatch: true))
            }
        }
        return RouteMatch(
            path: rule, caseSensitive: match.hasCaseSensitive ? match.caseSensitive.value : true,
            headers: headerMatchers(match.headers, path: child(path, "headers")), queryParameters: queries,
            grpc: match.hasGrpc,
            fraction: match.hasRuntimeFraction ? runtimeFraction(match.runtimeFraction, present: true, default: .all) : nil)
    }

    private mutating func routeAction(_ action: Envoy_Config_Route_V3_RouteAction, path: String) -> RouteAction? {
        let target: RouteAction.Target
        switch action.clusterSpecifier {
        case .cluster(let name)?:
            if name.isEmpty { invalid(child(path, "cluster"), "the cluster name must not be empty") }
            target = .cluster(name)
        case .clusterHeader(let header)?:
            if header.isEmpty { invalid(child(path, "cluster_header"), "the header name must not be empty") }
            target = .clusterHeader(header.lowercased())
        case .weightedClusters(let weighted)?:
            guard let clusters = weightedClusters(weighted, path: child(path, "weighted_clusters")) else { return nil }
            target = .weighted(clusters)
        case .clusterSpecifierPlugin?, .inlineClusterSpecifierPlugin?:
            return nil  // reported by the support check
        case nil:
            invalid(path, "a route action needs cluster, cluster_header or weighted_clusters")
            return nil
        }
        var result = RouteAction(target: target)
        switch action.clusterNotFoundResponseCode {
        case .serviceUnavailable: result.clusterNotFoundStatus = 503
        case .notFound: result.clusterNotFoundStatus = 404
        case .internalServerError: result.clusterNotFoundStatus = 500
        case .UNRECOGNIZED(let value):
            invalid(child(path, "cluster_not_found_response_code"), "unknown response code \(value)")
        }
        if !action.prefixRewrite.isEmpty { result.prefixRewrite = action.prefixRewrite }
        if action.hasRegexRewrite {
            if !action.prefixRewrite.isEmpty {
                invalid(path, "Cannot specify both prefix_rewrite and regex_rewrite")
            }
            if let pattern = regex(action.regexRewrite.pattern, path: child(path, "regex_rewrite.pattern")) {
                result.regexRewritePattern = pattern
                result.regexRewriteSubstitution = action.regexRewrite.substitution
            }
        }
        switch action.hostRewriteSpecifier {
        case .hostRewriteLiteral(let host)?: result.hostRewrite = .literal(host)
        case .autoHostRewrite(let flag)?: if flag.value { result.hostRewrite = .autoHost }
        case .hostRewriteHeader(let header)?: result.hostRewrite = .header(header.lowercased())
        case .hostRewritePathRegex(let rewrite)?:
            if let pattern = regex(rewrite.pattern, path: child(path, "host_rewrite_path_regex.pattern")) {
                result.hostRewrite = .pathRegex(pattern: pattern, substitution: rewrite.substitution)
            }
        case .hostRewrite?, nil: break  // `host_rewrite` (by metadata) is reported by the support check
        }
        result.appendXForwardedHost = action.appendXForwardedHost
        result.timeout = optionalDuration(action.timeout, present: action.hasTimeout, default: .seconds(15))
        // nil inherits the HCM's stream_idle_timeout; an explicit 0s (.zero) disables both.
        if action.hasIdleTimeout {
            result.idleTimeout = action.idleTimeout.isPositive ? action.idleTimeout.swiftDuration : .zero
        }
        if action.hasRetryPolicy { result.retryPolicy = retryPolicy(action.retryPolicy, path: child(path, "retry_policy")) }
        for (index, mirror) in action.requestMirrorPolicies.enumerated() {
            let mirrorPath = child(path, "request_mirror_policies[\(index)]")
            if mirror.cluster.isEmpty {
                if mirror.clusterHeader.isEmpty { invalid(mirrorPath, "a mirror policy needs cluster") }
                continue  // cluster_header is reported by the support check
            }
            result.mirrors.append(RequestMirrorPolicy(
                cluster: mirror.cluster,
                fraction: runtimeFraction(mirror.runtimeFraction, present: mirror.hasRuntimeFraction, default: .all)))
        }
        result.hashPolicies = hashPolicies(action.hashPolicy, path: child(path, "hash_policy"))
        if action.hasMaxStreamDuration {
            let limits = action.maxStreamDuration
            if limits.hasMaxStreamDuration, limits.maxStreamDuration.isPositive {
                result.maxStreamDuration = limits.maxStreamDuration.swiftDuration
            }
            // 0 means "no cap" on grpc-timeout, which the model spells as a zero duration.
            if limits.hasGrpcTimeoutHeaderMax { result.grpcTimeoutHeaderMax = limits.grpcTimeoutHeaderMax.swiftDuration }
            if limits.hasGrpcTimeoutHeaderOffset { result.grpcTimeoutHeaderOffset = limits.grpcTimeoutHeaderOffset.swiftDuration }
        }
        for (index, upgrade) in action.upgradeConfigs.enumerated() {
            if upgrade.upgradeType.isEmpty {
                invalid(child(path, "upgrade_configs[\(index)].upgrade_type"), "the upgrade type must not be empty")
                continue
            }
            result.upgradeConfigs[upgrade.upgradeType.lowercased()] = upgrade.hasEnabled ? upgrade.enabled.value : true
        }
        return result
    }

    private mutating func weightedClusters(_ weighted: Envoy_Config_Route_V3_WeightedCluster, path: String) -> WeightedHTTPClusters? {
        if weighted.clusters.isEmpty {
            invalid(child(path, "clusters"), "at least one cluster is required")
            return nil
        }
        var entries: [WeightedHTTPClusters.Entry] = []
        var sum: UInt64 = 0
        for (index, entry) in weighted.clusters.enumerated() {
            let entryPath = child(path, "clusters[\(index)]")
            if entry.name.isEmpty {
                // cluster_header entries are reported by the support check.
                if entry.clusterHeader.isEmpty { invalid(child(entryPath, "name"), "the cluster name must not be empty") }
                continue
            }
            let weight = entry.hasWeight ? entry.weight.value : 0
            sum += UInt64(weight)
            entries.append(WeightedHTTPClusters.Entry(
                name: entry.name, weight: weight,
                headers: headerMutations(
                    requestAdd: entry.requestHeadersToAdd, requestRemove: entry.requestHeadersToRemove,
                    responseAdd: entry.responseHeadersToAdd, responseRemove: entry.responseHeadersToRemove, path: entryPath),
                filterOverrides: perFilterConfigs(entry.typedPerFilterConfig, path: child(entryPath, "typed_per_filter_config"))))
        }
        // Envoy 1.40: total_weight is deprecated; when set it must still equal the sum.
        if weighted.hasTotalWeight, UInt64(weighted.totalWeight.value) != sum {
            invalid(child(path, "total_weight"),
                    "Sum of weights in the weighted_cluster should add up to \(weighted.totalWeight.value)")
        } else if sum == 0 {
            invalid(child(path, "clusters"), "Sum of weights in the weighted_cluster must be greater than 0.")
        } else if sum > UInt64(UInt32.max) {
            invalid(child(path, "clusters"), "The sum of weights of all weighted clusters of route must not exceed 4294967295")
        }
        var header: String?
        if case .headerName(let name)? = weighted.randomValueSpecifier, !name.isEmpty { header = name.lowercased() }
        return WeightedHTTPClusters(clusters: entries, randomValueHeader: header)
    }

    /// Envoy's known `retry_on` values for HTTP and gRPC.
    mutating func retryPolicy(_ policy: Envoy_Config_Route_V3_RetryPolicy, path: String) -> RetryPolicy {
        var result = RetryPolicy()
        for raw in policy.retryOn.split(separator: ",") {
            let name = raw.trimmingCharacters(in: .whitespaces)
            if name.isEmpty { continue }
            guard let condition = RetryPolicy.Condition(rawValue: name) else {
                invalid(child(path, "retry_on"), "unknown retry condition \"\(name)\"")
                continue
            }
            result.retryOn.insert(condition)
        }
        if policy.hasNumRetries { result.numRetries = Int(policy.numRetries.value) }
        if policy.hasPerTryTimeout, policy.perTryTimeout.isPositive { result.perTryTimeout = policy.perTryTimeout.swiftDuration }
        if policy.hasPerTryIdleTimeout, policy.perTryIdleTimeout.isPositive {
            result.perTryIdleTimeout = policy.perTryIdleTimeout.swiftDuration
        }
        result.retriableStatusCodes = Set(policy.retriableStatusCodes.map(Int.init))
        result.retriableHeaders = headerMatchers(policy.retriableHeaders, path: child(path, "retriable_headers"))
        for (index, predicate) in policy.retryHostPredicate.enumerated() {
            let typeName = predicate.typedConfig.typeURL.split(separator: "/").last.map(String.init) ?? ""
            if typeName == "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                || (predicate.configType == nil && predicate.name == "envoy.retry_host_predicates.previous_hosts")
            {
                result.avoidPreviousHosts = true
            } else if predicate.configType == nil {
                unsupported(child(path, "retry_host_predicate[\(index)]"), "retry host predicate \"\(predicate.name)\"",
                            feature: predicate.name)
            }
        }
        if policy.hostSelectionRetryMaxAttempts > 0 { result.hostSelectionMaxAttempts = Int(policy.hostSelectionRetryMaxAttempts) }
        if policy.hasRetryBackOff {
            let backOff = policy.retryBackOff
            let backOffPath = child(path, "retry_back_off")
            if !backOff.hasBaseInterval || !backOff.baseInterval.isPositive {
                invalid(child(backOffPath, "base_interval"), "must be a positive duration")
            } else {
                result.backOffBase = backOff.baseInterval.swiftDuration
                result.backOffMax = result.backOffBase * 10
                if backOff.hasMaxInterval {
                    if backOff.maxInterval.swiftDuration < result.backOffBase {
                        invalid(child(backOffPath, "max_interval"), "max_interval must be greater than or equal to the base_interval")
                    } else {
                        result.backOffMax = backOff.maxInterval.swiftDuration
                    }
                }
            }
        }
        return result
    }

    private mutating func hashPolicies(_ policies: [Envoy_Config_Route_V3_RouteAction.HashPolicy], path: String) -> [HashPolicy] {
        var result: [HashPolicy] = []
        for (index, policy) in policies.enumerated() {
            let policyPath = "\(path)[\(index)]"
            let source: HashPolicy.Source
            switch policy.policySpecifier {
            case .header(let header)?:
                if header.headerName.isEmpty { invalid(child(policyPath, "header.header_name"), "must not be empty") }
                source = .header(header.headerName.lowercased())
            case .cookie(let cookie)?:
                if cookie.name.isEmpty { invalid(child(policyPath, "cookie.name"), "must not be empty") }
                source = .cookie(name: cookie.name)
            case .connectionProperties(let properties)?:
                guard properties.sourceIp else { continue }
                source = .sourceIP
            case .queryParameter(let query)?:
                if query.name.isEmpty { invalid(child(policyPath, "query_parameter.name"), "must not be empty") }
                source = .queryParameter(query.name)
            case .filterState?:
                continue  // reported by the support check
            case nil:
                invalid(policyPath, "a hash policy needs header, cookie, connection_properties or query_parameter")
                continue
            }
            result.append(HashPolicy(source: source, terminal: policy.terminal))
        }
        return result
    }

    private mutating func redirectAction(_ redirect: Envoy_Config_Route_V3_RedirectAction, path: String) -> RedirectAction? {
        var result = RedirectAction()
        switch redirect.schemeRewriteSpecifier {
        case .httpsRedirect(let https)?: if https { result.scheme = "https" }
        case .schemeRedirect(let scheme)?: if !scheme.isEmpty { result.scheme = scheme.lowercased() }
        case nil: break
        }
        if !redirect.hostRedirect.isEmpty { result.host = redirect.hostRedirect }
        if redirect.portRedirect != 0 {
            guard let port = UInt16(exactly: redirect.portRedirect) else {
                invalid(child(path, "port_redirect"), "\(redirect.portRedirect) is not a valid port")
                return nil
            }
            result.port = port
        }
        switch redirect.pathRewriteSpecifier {
        case .pathRedirect(let target)?: result.path = .path(target)
        case .prefixRewrite(let prefix)?: result.path = .prefix(prefix)
        case .regexRewrite(let rewrite)?:
            guard let pattern = regex(rewrite.pattern, path: child(path, "regex_rewrite.pattern")) else { return nil }
            result.path = .regex(pattern: pattern, substitution: rewrite.substitution)
        case nil: break
        }
        switch redirect.responseCode {
        case .movedPermanently: result.status = 301
        case .found: result.status = 302
        case .seeOther: result.status = 303
        case .temporaryRedirect: result.status = 307
        case .permanentRedirect: result.status = 308
        case .UNRECOGNIZED(let value):
            invalid(child(path, "response_code"), "unknown redirect response code \(value)")
            return nil
        }
        result.stripQuery = redirect.stripQuery
        return result
    }

    private mutating func directResponse(_ direct: Envoy_Config_Route_V3_DirectResponseAction, path: String, bodyLimit: Int)
        -> RouteActionKind?
    {
        guard (200...599).contains(direct.status) else {
            invalid(child(path, "status"), "\(direct.status) is not a valid status (200 to 599)")
            return nil
        }
        var body: String?
        if direct.hasBody {
            switch direct.body.specifier {
            case .inlineString(let text)?: body = text
            case .inlineBytes(let bytes)?: body = String(decoding: bytes, as: UTF8.self)
            case .filename?, .environmentVariable?:
                return nil  // reported by the support check
            case nil: break
            }
            if let body, body.utf8.count > bodyLimit {
                invalid(child(path, "body"), "response body size is \(body.utf8.count) bytes; maximum is \(bodyLimit)")
                return nil
            }
        }
        return .directResponse(status: Int(direct.status), body: body)
    }
}
