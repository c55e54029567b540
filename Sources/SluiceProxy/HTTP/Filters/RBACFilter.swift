import SluiceModel

/// `envoy.filters.http.rbac` for one HTTP connection manager: the per-request check.
///
/// Stats, as Envoy 1.40 names them: `http.<hcm>.rbac.<rules_stat_prefix>allowed|denied` and
/// `http.<hcm>.rbac.<shadow_rules_stat_prefix>shadow_allowed|shadow_denied`. The model's
/// `RBACFilterConfig.statPrefix` is the HTTP filter's `rules_stat_prefix`.
public final class RBACFilter: Sendable {
    let engine: RBACEngine?
    let shadowEngine: RBACEngine?
    let allowed: Counter
    let denied: Counter
    let shadowAllowed: Counter
    let shadowDenied: Counter

    public init(config: RBACFilterConfig, hcmStatPrefix: String, stats: StatsStore) throws(FilterConfigError) {
        try Self.validate(config, at: "envoy.filters.http.rbac")
        engine = config.rules.map(RBACEngine.init)
        shadowEngine = config.shadowRules.map(RBACEngine.init)
        allowed = stats.counter(.http(hcmStatPrefix, "rbac.\(config.statPrefix)allowed"))
        denied = stats.counter(.http(hcmStatPrefix, "rbac.\(config.statPrefix)denied"))
        shadowAllowed = stats.counter(.http(hcmStatPrefix, "rbac.\(config.shadowRulesStatPrefix)shadow_allowed"))
        shadowDenied = stats.counter(.http(hcmStatPrefix, "rbac.\(config.shadowRulesStatPrefix)shadow_denied"))
    }

    /// The outcome for one request.
    public struct Result: Hashable, Sendable {
        /// Non-nil: answer with it (403 `RBAC: access denied`) and stop.
        public var localReply: FilterLocalReply?
        /// The enforced engine's effective policy (first match), if any.
        public var effectivePolicy: String?
        /// The shadow engine's verdict (`allowed`/`denied`, as Envoy's `shadow_engine_result`) and policy.
        public var shadowResult: String?
        public var shadowEffectivePolicy: String?
        /// LOG action: whether to log this request (Envoy's `access_log_hint`).
        public var accessLogHint: Bool?

        public var isDenied: Bool { localReply != nil }
    }

    /// Checks a request head (call it after routing, so `routeOverride` is the route's or virtual host's most
    /// specific `typed_per_filter_config` for this filter). `.rbac(nil)` or `.disabled` turn the check off for
    /// the route; `.rbac(config)` replaces both rule sets (stats keep the filter's prefixes, as in Envoy).
    ///
    /// Envoy also writes the verdicts to dynamic metadata (`envoy.filters.http.rbac`); the result carries them
    /// for the connection manager to keep if it has dynamic metadata.
    public func decodeHeaders(_ request: HTTPRequestContext, connection: RBACConnectionInfo = .plainText,
                              routeOverride: PerRouteFilterConfig? = nil) -> Result {
        var engine = self.engine
        var shadowEngine = self.shadowEngine
        switch routeOverride {
        case .disabled?, .rbac(nil)?: return Result()
        case .rbac(let perRoute?)?:
            engine = perRoute.rules.map(RBACEngine.init)
            shadowEngine = perRoute.shadowRules.map(RBACEngine.init)
        default: break
        }
        var result = Result()
        if let shadowEngine {
            let decision = shadowEngine.evaluate(request, connection: connection)
            (decision.allowed ? shadowAllowed : shadowDenied).increment()
            result.shadowResult = decision.allowed ? "allowed" : "denied"
            result.shadowEffectivePolicy = decision.matchedPolicy
        }
        guard let engine else { return result }
        let decision = engine.evaluate(request, connection: connection)
        result.effectivePolicy = decision.matchedPolicy
        result.accessLogHint = decision.shouldLog
        if decision.allowed {
            allowed.increment()
        } else {
            denied.increment()
            let policy = (decision.matchedPolicy ?? "none").map { $0.isWhitespace ? "_" : String($0) }.joined()
            result.localReply = FilterLocalReply(status: 403, body: "RBAC: access denied",
                                                 details: "rbac_access_denied_matched_policy[\(policy)]")
        }
        return result
    }

    /// Checks every regex in the rules compiles; the error names the policy.
    public static func validate(_ config: RBACFilterConfig, at field: String) throws(FilterConfigError) {
        for (label, rules) in [("rules", config.rules), ("shadow_rules", config.shadowRules)] {
            guard let rules else { continue }
            for (name, policy) in rules.policies {
                let where_ = "\(field).\(label).policies[\(name)]"
                if policy.permissions.isEmpty {
                    throw FilterConfigError(field: "\(where_).permissions", problem: "must have at least one entry")
                }
                if policy.principals.isEmpty {
                    throw FilterConfigError(field: "\(where_).principals", problem: "must have at least one entry")
                }
                for permission in policy.permissions { try validate(permission, at: "\(where_).permissions") }
                for principal in policy.principals { try validate(principal, at: "\(where_).principals") }
            }
        }
    }

    private static func validate(_ permission: RBACPermission, at field: String) throws(FilterConfigError) {
        switch permission {
        case .and(let rules), .or(let rules): for rule in rules { try validate(rule, at: field) }
        case .not(let rule): try validate(rule, at: field)
        case .header(let matcher): try validate(matcher, at: field)
        case .urlPath(let matcher), .requestedServerName(let matcher): try FilterMatching.validate(matcher, at: field)
        case .any, .destinationIP, .destinationPort, .destinationPortRange: break
        }
    }

    private static func validate(_ principal: RBACPrincipal, at field: String) throws(FilterConfigError) {
        switch principal {
        case .and(let ids), .or(let ids): for id in ids { try validate(id, at: field) }
        case .not(let id): try validate(id, at: field)
        case .header(let matcher): try validate(matcher, at: field)
        case .urlPath(let matcher), .filterState(_, let matcher): try FilterMatching.validate(matcher, at: field)
        case .authenticated(let matcher?): try FilterMatching.validate(matcher, at: field)
        case .any, .authenticated(nil), .directRemoteIP, .remoteIP: break
        }
    }

    private static func validate(_ matcher: HeaderMatcher, at field: String) throws(FilterConfigError) {
        if case .string(let stringMatcher) = matcher.rule { try FilterMatching.validate(stringMatcher, at: "\(field).header[\(matcher.name)]") }
    }
}
