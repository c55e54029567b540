import SluiceModel

/// What RBAC sees of the connection beyond the request itself.
public struct RBACConnectionInfo: Hashable, Sendable {
    /// SNI; empty on plain-text connections.
    public var requestedServerName: String
    /// The peer certificate's principal (URI SAN, else DNS SAN, else subject); nil: not authenticated.
    public var peerPrincipal: String?
    /// String values in the stream's filter state (e.g. `io.istio.peer_principal`).
    public var filterState: [String: String]

    public init(requestedServerName: String = "", peerPrincipal: String? = nil, filterState: [String: String] = [:]) {
        self.requestedServerName = requestedServerName
        self.peerPrincipal = peerPrincipal
        self.filterState = filterState
    }

    /// A plain-text connection: no SNI, never authenticated.
    public static let plainText = RBACConnectionInfo()
}

/// Evaluates one `rbac.v3.RBAC` rule set against a request (Envoy's RBAC engine).
public struct RBACEngine: Hashable, Sendable {
    public let action: RBACRules.Action
    /// Policies in Envoy's order (by name, byte-wise): the first that matches is the effective one.
    public let policies: [(name: String, policy: RBACPolicy)]

    public init(_ rules: RBACRules) {
        action = rules.action
        policies = rules.policies.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map { ($0.key, $0.value) }
    }

    /// The engine's verdict.
    public struct Decision: Hashable, Sendable {
        public var allowed: Bool
        /// The first matching policy's name, if any.
        public var matchedPolicy: String?
        /// LOG action: whether the request should be logged (Envoy's `access_log_hint`); nil otherwise.
        public var shouldLog: Bool?
    }

    /// ALLOW: allowed iff a policy matches; DENY: allowed iff none matches; LOG: always allowed.
    public func evaluate(_ request: HTTPRequestContext, connection: RBACConnectionInfo) -> Decision {
        let matched = policies.first { Self.matches($0.policy, request, connection) }?.name
        switch action {
        case .allow: return Decision(allowed: matched != nil, matchedPolicy: matched, shouldLog: nil)
        case .deny: return Decision(allowed: matched == nil, matchedPolicy: matched, shouldLog: nil)
        case .log: return Decision(allowed: true, matchedPolicy: matched, shouldLog: matched != nil)
        }
    }

    /// A policy matches when any permission and any principal match.
    public static func matches(_ policy: RBACPolicy, _ request: HTTPRequestContext, _ connection: RBACConnectionInfo) -> Bool {
        policy.permissions.contains { matches($0, request, connection) }
            && policy.principals.contains { matches($0, request, connection) }
    }

    public static func matches(_ permission: RBACPermission, _ request: HTTPRequestContext,
                               _ connection: RBACConnectionInfo) -> Bool {
        switch permission {
        case .any: return true
        case .and(let rules): return rules.allSatisfy { matches($0, request, connection) }
        case .or(let rules): return rules.contains { matches($0, request, connection) }
        case .not(let rule): return !matches(rule, request, connection)
        case .header(let matcher): return FilterMatching.matches(matcher, request)
        case .urlPath(let matcher): return FilterMatching.matches(matcher, request.pathWithoutQuery)
        case .destinationIP(let range): return range.contains(request.local.address)
        case .destinationPort(let port): return request.local.port == port
        case .destinationPortRange(let range): return range.contains(request.local.port)
        case .requestedServerName(let matcher): return FilterMatching.matches(matcher, connection.requestedServerName)
        }
    }

    public static func matches(_ principal: RBACPrincipal, _ request: HTTPRequestContext,
                               _ connection: RBACConnectionInfo) -> Bool {
        switch principal {
        case .any: return true
        case .and(let ids): return ids.allSatisfy { matches($0, request, connection) }
        case .or(let ids): return ids.contains { matches($0, request, connection) }
        case .not(let id): return !matches(id, request, connection)
        case .authenticated(let matcher):
            guard let peer = connection.peerPrincipal else { return false }
            return matcher.map { FilterMatching.matches($0, peer) } ?? true
        case .directRemoteIP(let range): return range.contains(request.directRemote.address)
        case .remoteIP(let range): return range.contains(request.remote.address)
        case .header(let matcher): return FilterMatching.matches(matcher, request)
        case .urlPath(let matcher): return FilterMatching.matches(matcher, request.pathWithoutQuery)
        case .filterState(let key, let matcher):
            guard let value = connection.filterState[key] else { return false }
            return FilterMatching.matches(matcher, value)
        }
    }

    public static func == (lhs: RBACEngine, rhs: RBACEngine) -> Bool {
        lhs.action == rhs.action && lhs.policies.map(\.name) == rhs.policies.map(\.name)
            && lhs.policies.map(\.policy) == rhs.policies.map(\.policy)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(action)
        for entry in policies { hasher.combine(entry.name) }
    }
}
