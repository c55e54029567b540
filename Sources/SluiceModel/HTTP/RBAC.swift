/// `envoy.extensions.filters.http.rbac.v3.RBAC` (and the network RBAC filter): the per-request check.
public struct RBACFilterConfig: Hashable, Sendable {
    /// nil: every request is allowed.
    public var rules: RBACRules?
    /// Evaluated and counted, never enforced.
    public var shadowRules: RBACRules?
    public var statPrefix: String
    public var shadowRulesStatPrefix: String

    public init(rules: RBACRules?, shadowRules: RBACRules? = nil, statPrefix: String = "", shadowRulesStatPrefix: String = "") {
        self.rules = rules
        self.shadowRules = shadowRules
        self.statPrefix = statPrefix
        self.shadowRulesStatPrefix = shadowRulesStatPrefix
    }
}

/// Envoy's `config.rbac.v3.RBAC`.
public struct RBACRules: Hashable, Sendable {
    public enum Action: Hashable, Sendable {
        case allow, deny, log
    }

    public var action: Action
    /// Policies by name; the engine evaluates them in name order so the matched policy is deterministic.
    public var policies: [String: RBACPolicy]

    public init(action: Action, policies: [String: RBACPolicy]) {
        self.action = action
        self.policies = policies
    }
}

/// A policy matches when any permission and any principal match.
public struct RBACPolicy: Hashable, Sendable {
    public var permissions: [RBACPermission]
    public var principals: [RBACPrincipal]

    public init(permissions: [RBACPermission], principals: [RBACPrincipal]) {
        self.permissions = permissions
        self.principals = principals
    }
}

/// Envoy's `rbac.v3.Permission`: what is being done.
public indirect enum RBACPermission: Hashable, Sendable {
    case any
    case and([RBACPermission])
    case or([RBACPermission])
    case not(RBACPermission)
    case header(HeaderMatcher)
    /// The path without query (Envoy's `url_path`).
    case urlPath(StringMatcher)
    case destinationIP(CIDRRange)
    case destinationPort(UInt16)
    case destinationPortRange(ClosedRange<UInt16>)
    case requestedServerName(StringMatcher)
}

/// Envoy's `rbac.v3.Principal`: who is doing it.
public indirect enum RBACPrincipal: Hashable, Sendable {
    case any
    case and([RBACPrincipal])
    case or([RBACPrincipal])
    case not(RBACPrincipal)
    /// The peer certificate's principal; nil matcher: any authenticated peer. Plain-text
    /// connections are never authenticated.
    case authenticated(StringMatcher?)
    /// The downstream connection's source address (`direct_remote_ip`, deprecated `source_ip`).
    case directRemoteIP(CIDRRange)
    /// The client address after `x-forwarded-for` processing (`remote_ip`).
    case remoteIP(CIDRRange)
    case header(HeaderMatcher)
    case urlPath(StringMatcher)
    /// A string in the stream's filter state (`filter_state`; Istio checks `io.istio.peer_principal`,
    /// which only mTLS connections carry).
    case filterState(key: String, matcher: StringMatcher)
}
