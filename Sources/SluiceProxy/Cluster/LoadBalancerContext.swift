import SluiceModel

/// What the caller knows about the request a host is chosen for.
public struct LoadBalancerContext: Sendable {
    /// The request hash from the route's `hash_policy` (RING_HASH, MAGLEV); nil picks at random.
    public var hashKey: UInt64?
    /// Hosts to avoid (the previous-hosts retry predicate, failed connect attempts).
    public var hostsToAvoid: Set<ObjectIdentifier>
    /// How often a hash-based pick that lands on a host to avoid is repeated with a perturbed
    /// hash (`host_selection_retry_max_attempts`, 1 by default as in Envoy).
    public var hostSelectionRetryMaxAttempts: Int
    /// The downstream connection's original destination (ORIGINAL_DST clusters).
    public var originalDestination: SocketEndpoint?

    public init(hashKey: UInt64? = nil, hostsToAvoid: Set<ObjectIdentifier> = [], hostSelectionRetryMaxAttempts: Int = 1,
                originalDestination: SocketEndpoint? = nil) {
        self.hashKey = hashKey
        self.hostsToAvoid = hostsToAvoid
        self.hostSelectionRetryMaxAttempts = hostSelectionRetryMaxAttempts
        self.originalDestination = originalDestination
    }

    /// Adds `host` to the hosts to avoid.
    public mutating func avoid(_ host: UpstreamHost) { hostsToAvoid.insert(ObjectIdentifier(host)) }
}
