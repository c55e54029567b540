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
    public let priority: Int

    public let connectionsActive = Gauge()
    public let connectionsTotal = Counter()
    public let connectFailures = Counter()
    private let lastUsedNanos = Atomic<UInt64>(0)

    public init(
        address: SocketEndpoint,
        hostname: String? = nil,
        weight: UInt32 = 1,
        health: HealthStatus = .unknown,
        locality: Locality = Locality(),
        priority: Int = 0
    ) {
        self.address = address
        self.hostname = hostname
        self.weight = max(weight, 1)
        self.health = health
        self.locality = locality
        self.priority = priority
    }

    public var description: String { address.description }

    /// Whether the load balancer may pick this host outside panic mode.
    public var isHealthy: Bool { health.acceptsTraffic }

    func markUsed(at nanos: UInt64) { lastUsedNanos.store(nanos, ordering: .relaxed) }
    var lastUsed: UInt64 { lastUsedNanos.load(ordering: .relaxed) }

    /// Whether `other` describes this host identically, so this object (and its stats) can stay.
    func hasSameDiscoveryData(as other: UpstreamHost) -> Bool {
        address == other.address && weight == other.weight && health == other.health
            && locality == other.locality && priority == other.priority
    }
}
