import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// The HTTP filters Sluice implements (fault, RBAC, local rate limit, CORS), as listener-level
/// configuration and as per-route overrides.
extension TranslationContext {
    static let faultType = "envoy.extensions.filters.http.fault.v3.HTTPFault"
    static let rbacType = "envoy.extensions.filters.http.rbac.v3.RBAC"
    static let rbacPerRouteType = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
    static let localRateLimitType = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
    static let corsType = "envoy.extensions.filters.http.cors.v3.Cors"
    static let corsPolicyType = "envoy.extensions.filters.http.cors.v3.CorsPolicy"
    static let routerType = "envoy.extensions.filters.http.router.v3.Router"
    static let filterConfigType = "envoy.config.route.v3.FilterConfig"

    /// `typed_per_filter_config`; entries of types Sluice lacks are left to the support check.
    mutating func perFilterConfigs(_ configs: [String: Google_Protobuf_Any], path: String) -> [String: PerRouteFilterConfig] {
        var result: [String: PerRouteFilterConfig] = [:]
        for (name, any) in configs.sorted(by: { $0.key < $1.key }) {
            if let config = perFilterConfig(any, path: "\(path)[\(name)]") { result[name] = config }
        }
        return result
    }

    private mutating func perFilterConfig(_ any: Google_Protobuf_Any, path: String) -> PerRouteFilterConfig? {
        do {
            switch Self.typeName(any.typeURL) {
            case Self.faultType:
                return fault(try Envoy_Extensions_Filters_Http_Fault_V3_HTTPFault(unpackingAny: any), path: path).map { .fault($0) }
            case Self.rbacPerRouteType:
                let perRoute = try Envoy_Extensions_Filters_Http_Rbac_V3_RBACPerRoute(unpackingAny: any)
                // An RBACPerRoute without rbac turns the filter off for the route.
                guard perRoute.hasRbac else { return .rbac(nil) }
                return rbacFilter(perRoute.rbac, path: child(path, "rbac")).map { .rbac($0) }
            case Self.localRateLimitType:
                return localRateLimit(try Envoy_Extensions_Filters_Http_LocalRatelimit_V3_LocalRateLimit(unpackingAny: any), path: path)
                    .map { .localRateLimit($0) }
            case Self.corsPolicyType:
                return .cors(corsPolicy(try Envoy_Extensions_Filters_Http_Cors_V3_CorsPolicy(unpackingAny: any), path: path))
            case Self.filterConfigType:
                let wrapper = try Envoy_Config_Route_V3_FilterConfig(unpackingAny: any)
                if wrapper.disabled { return .disabled }
                guard wrapper.hasConfig else { return nil }
                return perFilterConfig(wrapper.config, path: child(path, "config"))
            default:
                return nil
            }
        } catch {
            invalid(path, "cannot decode \(Self.typeName(any.typeURL)): \(error)")
            return nil
        }
    }

    // MARK: Fault

    mutating func fault(_ fault: Envoy_Extensions_Filters_Http_Fault_V3_HTTPFault, path: String) -> FaultConfig? {
        var result = FaultConfig()
        if fault.hasDelay {
            let delay = fault.delay
            switch delay.faultDelaySecifier {
            case .fixedDelay(let duration)?:
                result.delay = FaultConfig.Delay(fixed: duration.swiftDuration, percentage: fraction(delay.percentage))
            case .headerDelay?:
                result.delay = FaultConfig.Delay(fixed: nil, percentage: fraction(delay.percentage))
            case nil:
                invalid(child(path, "delay"), "a delay needs fixed_delay or header_delay")
            }
        }
        if fault.hasAbort {
            let abort = fault.abort
            let abortPath = child(path, "abort")
            switch abort.errorType {
            case .httpStatus(let status)?:
                if (200..<600).contains(status) {
                    result.abort = FaultConfig.Abort(kind: .httpStatus(Int(status)), percentage: fraction(abort.percentage))
                } else {
                    invalid(child(abortPath, "http_status"), "\(status) is not a valid HTTP status (200 to 599)")
                }
            case .grpcStatus(let status)?:
                result.abort = FaultConfig.Abort(kind: .grpcStatus(Int(status)), percentage: fraction(abort.percentage))
            case .headerAbort?:
                result.abort = FaultConfig.Abort(kind: .fromHeader, percentage: fraction(abort.percentage))
            case nil:
                invalid(abortPath, "an abort needs http_status, grpc_status or header_abort")
            }
        }
        if !fault.upstreamCluster.isEmpty { result.upstreamCluster = fault.upstreamCluster }
        result.headers = headerMatchers(fault.headers, path: child(path, "headers"))
        result.downstreamNodes = fault.downstreamNodes
        if fault.hasMaxActiveFaults { result.maxActiveFaults = Int(fault.maxActiveFaults.value) }
        return result
    }

    // MARK: RBAC

    mutating func rbacFilter(_ rbac: Envoy_Extensions_Filters_Http_Rbac_V3_RBAC, path: String) -> RBACFilterConfig? {
        let before = issues.count
        let rules = rbac.hasRules ? rbacRules(rbac.rules, path: child(path, "rules")) : nil
        let shadow = rbac.hasShadowRules ? rbacRules(rbac.shadowRules, path: child(path, "shadow_rules")) : nil
        guard !hasErrors(since: before) else { return nil }
        return RBACFilterConfig(
            rules: rules, shadowRules: shadow, statPrefix: rbac.rulesStatPrefix, shadowRulesStatPrefix: rbac.shadowRulesStatPrefix)
    }

    private mutating func rbacRules(_ rules: Envoy_Config_Rbac_V3_RBAC, path: String) -> RBACRules? {
        let action: RBACRules.Action
        switch rules.action {
        case .allow: action = .allow
        case .deny: action = .deny
        case .log: action = .log
        case .UNRECOGNIZED(let value):
            invalid(child(path, "action"), "unknown action \(value)")
            return nil
        }
        var policies: [String: RBACPolicy] = [:]
        for (name, policy) in rules.policies.sorted(by: { $0.key < $1.key }) {
            let policyPath = child(path, "policies[\(name)]")
            if policy.permissions.isEmpty { invalid(child(policyPath, "permissions"), "a policy needs at least one permission") }
            if policy.principals.isEmpty { invalid(child(policyPath, "principals"), "a policy needs at least one principal") }
            let permissions = policy.permissions.enumerated().compactMap {
                permission($1, path: child(policyPath, "permissions[\($0)]"))
            }
            let principals = policy.principals.enumerated().compactMap {
                principal($1, path: child(policyPath, "principals[\($0)]"))
            }
            policies[name] = RBACPolicy(permissions: permissions, principals: principals)
        }
        return RBACRules(action: action, policies: policies)
    }

    private mutating func permission(_ permission: Envoy_Config_Rbac_V3_Permission, path: String) -> RBACPermission? {
        switch permission.rule {
        case .any(let any)?:
            guard any else {
                invalid(child(path, "any"), "any must be true")
                return nil
            }
            return .any
        case .andRules(let set)?:
            return .and(set.rules.enumerated().compactMap { self.permission($1, path: child(path, "and_rules.rules[\($0)]")) })
        case .orRules(let set)?:
            return .or(set.rules.enumerated().compactMap { self.permission($1, path: child(path, "or_rules.rules[\($0)]")) })
        case .notRule(let inner)?:
            return self.permission(inner, path: child(path, "not_rule")).map { .not($0) }
        case .header(let header)?:
            return headerMatcher(header, path: child(path, "header")).map { .header($0) }
        case .urlPath(let matcher)?:
            return pathMatcher(matcher, path: child(path, "url_path")).map { .urlPath($0) }
        case .destinationIp(let range)?:
            return cidrRange(range, path: child(path, "destination_ip")).map { .destinationIP($0) }
        case .destinationPort(let port)?:
            guard let value = UInt16(exactly: port) else {
                invalid(child(path, "destination_port"), "\(port) is not a valid port")
                return nil
            }
            return .destinationPort(value)
        case .destinationPortRange(let range)?:
            guard range.start >= 0, range.end <= 65536 else {
                invalid(child(path, "destination_port_range"), "[\(range.start), \(range.end)) is not a port range")
                return nil
            }
            // [start, end): an empty range matches nothing.
            guard range.start < range.end else { return .not(.any) }
            return .destinationPortRange(UInt16(range.start)...UInt16(range.end - 1))
        case .requestedServerName(let matcher)?:
            return stringMatcher(matcher, path: child(path, "requested_server_name")).map { .requestedServerName($0) }
        case .metadata?, .matcher?, .uriTemplate?, .sourcedMetadata?:
            return nil  // reported by the support check
        case nil:
            invalid(path, "a permission needs a rule")
            return nil
        }
    }

    private mutating func principal(_ principal: Envoy_Config_Rbac_V3_Principal, path: String) -> RBACPrincipal? {
        switch principal.identifier {
        case .any(let any)?:
            guard any else {
                invalid(child(path, "any"), "any must be true")
                return nil
            }
            return .any
        case .andIds(let set)?:
            return .and(set.ids.enumerated().compactMap { self.principal($1, path: child(path, "and_ids.ids[\($0)]")) })
        case .orIds(let set)?:
            return .or(set.ids.enumerated().compactMap { self.principal($1, path: child(path, "or_ids.ids[\($0)]")) })
        case .notID(let inner)?:
            return self.principal(inner, path: child(path, "not_id")).map { .not($0) }
        case .authenticated(let authenticated)?:
            guard authenticated.hasPrincipalName else { return .authenticated(nil) }
            return stringMatcher(authenticated.principalName, path: child(path, "authenticated.principal_name"))
                .map { .authenticated($0) }
        case .sourceIp(let range)?:
            return cidrRange(range, path: child(path, "source_ip")).map { .directRemoteIP($0) }
        case .directRemoteIp(let range)?:
            return cidrRange(range, path: child(path, "direct_remote_ip")).map { .directRemoteIP($0) }
        case .remoteIp(let range)?:
            return cidrRange(range, path: child(path, "remote_ip")).map { .remoteIP($0) }
        case .header(let header)?:
            return headerMatcher(header, path: child(path, "header")).map { .header($0) }
        case .urlPath(let matcher)?:
            return pathMatcher(matcher, path: child(path, "url_path")).map { .urlPath($0) }
        case .metadata?, .filterState?, .sourcedMetadata?, .custom?:
            return nil  // reported by the support check
        case nil:
            invalid(path, "a principal needs an identifier")
            return nil
        }
    }

    private mutating func pathMatcher(_ matcher: Envoy_Type_Matcher_V3_PathMatcher, path: String) -> StringMatcher? {
        guard case .path(let string)? = matcher.rule else {
            invalid(path, "a path matcher needs path")
            return nil
        }
        return stringMatcher(string, path: child(path, "path"))
    }

    // MARK: Local rate limit

    mutating func localRateLimit(_ limit: Envoy_Extensions_Filters_Http_LocalRatelimit_V3_LocalRateLimit, path: String)
        -> LocalRateLimitConfig?
    {
        if limit.statPrefix.isEmpty {
            invalid(child(path, "stat_prefix"), "stat_prefix is required")
            return nil
        }
        var bucket: TokenBucket?
        if limit.hasTokenBucket {
            let raw = limit.tokenBucket
            let bucketPath = child(path, "token_bucket")
            if raw.maxTokens == 0 { invalid(child(bucketPath, "max_tokens"), "must be greater than 0") }
            if !raw.hasFillInterval || !raw.fillInterval.isPositive {
                invalid(child(bucketPath, "fill_interval"), "must be a positive duration")
            } else if raw.fillInterval.swiftDuration < .milliseconds(50) {
                invalid(child(bucketPath, "fill_interval"), "local rate limit token bucket fill timer must be >= 50ms")
            }
            if raw.hasTokensPerFill, raw.tokensPerFill.value == 0 {
                invalid(child(bucketPath, "tokens_per_fill"), "must be greater than 0")
            }
            if raw.maxTokens > 0, raw.fillInterval.isPositive {
                bucket = TokenBucket(
                    maxTokens: Int(raw.maxTokens), tokensPerFill: raw.hasTokensPerFill ? Int(raw.tokensPerFill.value) : 1,
                    fillInterval: raw.fillInterval.swiftDuration)
            }
        }
        // Envoy answers with the configured status only when it is an error status.
        var status = 429
        if limit.hasStatus, limit.status.code.rawValue >= 400 { status = limit.status.code.rawValue }
        return LocalRateLimitConfig(
            statPrefix: limit.statPrefix, tokenBucket: bucket,
            filterEnabled: runtimeFraction(limit.filterEnabled, present: limit.hasFilterEnabled, default: .none),
            filterEnforced: runtimeFraction(limit.filterEnforced, present: limit.hasFilterEnforced, default: .none),
            status: status,
            responseHeadersToAdd: headerValueOptions(limit.responseHeadersToAdd, path: child(path, "response_headers_to_add")),
            requestHeadersToAddWhenNotEnforced: headerValueOptions(
                limit.requestHeadersToAddWhenNotEnforced, path: child(path, "request_headers_to_add_when_not_enforced")),
            perDownstreamConnection: limit.localRateLimitPerDownstreamConnection,
            enableXRateLimitHeaders: limit.enableXRatelimitHeaders == .draftVersion03)
    }

    // MARK: CORS

    mutating func corsPolicy(_ policy: Envoy_Extensions_Filters_Http_Cors_V3_CorsPolicy, path: String) -> CORSPolicy {
        CORSPolicy(
            allowOrigins: policy.allowOriginStringMatch.enumerated().compactMap {
                stringMatcher($1, path: child(path, "allow_origin_string_match[\($0)]"))
            },
            allowMethods: policy.allowMethods.isEmpty ? nil : policy.allowMethods,
            allowHeaders: policy.allowHeaders.isEmpty ? nil : policy.allowHeaders,
            exposeHeaders: policy.exposeHeaders.isEmpty ? nil : policy.exposeHeaders,
            maxAge: policy.maxAge.isEmpty ? nil : policy.maxAge,
            allowCredentials: policy.hasAllowCredentials ? policy.allowCredentials.value : nil,
            allowPrivateNetworkAccess: policy.hasAllowPrivateNetworkAccess ? policy.allowPrivateNetworkAccess.value : nil,
            filterEnabled: runtimeFraction(policy.filterEnabled, present: policy.hasFilterEnabled, default: .all),
            shadowEnabled: policy.hasShadowEnabled ? runtimeFraction(policy.shadowEnabled, present: true, default: .none) : nil,
            forwardNotMatchingPreflights: policy.hasForwardNotMatchingPreflights ? policy.forwardNotMatchingPreflights.value : true)
    }

    /// The deprecated `route.v3.CorsPolicy` on a virtual host.
    mutating func corsPolicy(_ policy: Envoy_Config_Route_V3_CorsPolicy, path: String) -> CORSPolicy {
        var enabled = FractionalPercent.all
        if case .filterEnabled(let percent)? = policy.enabledSpecifier {
            enabled = runtimeFraction(percent, present: true, default: .all)
        }
        return CORSPolicy(
            allowOrigins: policy.allowOriginStringMatch.enumerated().compactMap {
                stringMatcher($1, path: child(path, "allow_origin_string_match[\($0)]"))
            },
            allowMethods: policy.allowMethods.isEmpty ? nil : policy.allowMethods,
            allowHeaders: policy.allowHeaders.isEmpty ? nil : policy.allowHeaders,
            exposeHeaders: policy.exposeHeaders.isEmpty ? nil : policy.exposeHeaders,
            maxAge: policy.maxAge.isEmpty ? nil : policy.maxAge,
            allowCredentials: policy.hasAllowCredentials ? policy.allowCredentials.value : nil,
            allowPrivateNetworkAccess: policy.hasAllowPrivateNetworkAccess ? policy.allowPrivateNetworkAccess.value : nil,
            filterEnabled: enabled,
            shadowEnabled: policy.hasShadowEnabled ? runtimeFraction(policy.shadowEnabled, present: true, default: .none) : nil,
            forwardNotMatchingPreflights: policy.hasForwardNotMatchingPreflights ? policy.forwardNotMatchingPreflights.value : true)
    }
}
