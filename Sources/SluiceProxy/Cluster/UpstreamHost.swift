import SluiceModel
import Synchronization

/// One upstream host of a cluster, with the per-host stats Envoy shows at `/clusters`.
public final class UpstreamHost: Sendable, CustomStringConvertible {
    public let address: SocketEndpoint
    /// The DNS name the host came from, if any.
    public let hostname: String?
    public let weight: UInt32
    public let health: HealthStatus
    public let locality: Locality
    /// The weight of the host's locality (`LocalityLbEndpoints.load_balancing_weight`); nil when unset.
    public let localityWeight: UInt32?
    public let priority: Int

    public let connectionsActive = Gauge()
    public let connectionsTotal = Counter()
    public let connectFailures = Counter()
    /// Requests in flight on this host (Envoy's `rq_active`); LEAST_REQUEST balances on it.
    public let activeRequests = Gauge()
    private let lastUsedNanos = Atomic<UInt64>(0)
    /// Envoy's host health flags set at run time (`FAILED_ACTIVE_HC`, `FAILED_OUTLIER_CHECK`).
    private let flags = Atomic<UInt8>(0)
    private let leftCluster = Atomic<Bool>(false)

    public init(
        address: SocketEndpoint,
        hostname: String? = nil,
        weight: UInt32 = 1,
        health: HealthStatus = .unknown,
        locality: Locality = Locality(),
        localityWeight: UInt32? = nil,
        priority: Int = 0
    ) {
        self.address = address
        self.hostname = hostname
        self.weight = max(weight, 1)
        self.health = health
        self.locality = locality
        self.localityWeight = localityWeight
        self.priority = priority
    }

    public var description: String { address.description }

    /// Whether the load balancer may pick this host outside panic mode: discovery says it may
    /// take traffic, it has not failed active health checking and is not ejected.
    public var isHealthy: Bool { health.acceptsTraffic && flags.load(ordering: .relaxed) == 0 }

    /// Set by active health checking; the host is unhealthy while set.
    public var failedActiveHealthCheck: Bool { flags.load(ordering: .relaxed) & HealthFlag.failedActiveHealthCheck != 0 }
    /// Set while outlier detection has the host ejected.
    public var isEjected: Bool { flags.load(ordering: .relaxed) & HealthFlag.failedOutlierCheck != 0 }

    enum HealthFlag {
        static let failedActiveHealthCheck: UInt8 = 1
        static let failedOutlierCheck: UInt8 = 2
    }

    /// Sets or clears a health flag; true when the flag changed.
    @discardableResult
    func setFlag(_ flag: UInt8, _ on: Bool) -> Bool {
        let old = on ? flags.bitwiseOr(flag, ordering: .relaxed).oldValue : flags.bitwiseAnd(~flag, ordering: .relaxed).oldValue
        return (old & flag != 0) != on
    }

    /// Whether discovery (or a cluster update) removed the host from its cluster; its idle
    /// upstream connections are closed and its pools dropped.
    var hasLeftCluster: Bool { leftCluster.load(ordering: .relaxed) }

    func markLeftCluster() { leftCluster.store(true, ordering: .relaxed) }

    func markUsed(at nanos: UInt64) { lastUsedNanos.store(nanos, ordering: .relaxed) }
    var lastUsed: UInt64 { lastUsedNanos.load(ordering: .relaxed) }

    /// Whether `other` describes this host identically, so this object (and its stats) can stay.
    func hasSameDiscoveryData(as other: UpstreamHost) -> Bool {
        address == other.address && weight == other.weight && health == other.health
            && locality == other.locality && localityWeight == other.localityWeight && priority == other.priority
    }
}
