/// An upstream cluster: how its hosts are found and how one is chosen.
public struct ClusterConfig: Hashable, Sendable {
    public var name: String
    public var discovery: Discovery
    public var connectTimeout: Duration
    public var loadBalancing: LoadBalancingPolicy
    public var loadAssignment: LoadAssignment
    public var perConnectionBufferLimitBytes: Int
    /// Below this percentage of healthy hosts in a priority, balance across all of its hosts.
    public var healthyPanicThresholdPercent: Double
    /// `SO_MARK` for upstream sockets from `upstream_bind_config.socket_options`; nil keeps the
    /// proxy's own mark.
    public var upstreamMark: UInt32?
    /// `circuit_breakers`: limits per routing priority (Envoy's defaults when not configured).
    public var circuitBreakers: CircuitBreakerSettings
    /// `outlier_detection`; nil when the cluster has none (passive health checking off).
    public var outlierDetection: OutlierDetectionConfig?
    /// `health_checks` (active health checking); empty when none.
    public var healthChecks: [HealthCheckConfig]
    /// How the router talks HTTP to this cluster's hosts.
    public var upstreamHTTP: UpstreamHTTPOptions
    /// `least_request_lb_config.active_request_bias` (1.0 by default).
    public var leastRequestActiveRequestBias: Double
    /// `common_lb_config.locality_weighted_lb_config`: pick a locality by its weight first.
    public var localityWeighted: Bool

    /// How the cluster's hosts are found.
    public enum Discovery: Hashable, Sendable {
        /// Fixed IP endpoints (`STATIC`).
        case staticEndpoints
        /// Hostnames resolved periodically; every returned address is a host (`STRICT_DNS`).
        case strictDNS(refreshRate: Duration, lookupFamily: DNSLookupFamily, respectTTL: Bool)
        /// The host is the downstream connection's original destination (`ORIGINAL_DST`); hosts
        /// idle longer than `cleanupInterval` are forgotten.
        case originalDestination(cleanupInterval: Duration)
        /// Hosts come from xDS `ClusterLoadAssignment`s named `serviceName` (`EDS`).
        case eds(serviceName: String)
    }

    public init(
        name: String,
        discovery: Discovery,
        connectTimeout: Duration = .seconds(5),
        loadBalancing: LoadBalancingPolicy = .roundRobin,
        loadAssignment: LoadAssignment = LoadAssignment(),
        perConnectionBufferLimitBytes: Int = 1 << 20,
        healthyPanicThresholdPercent: Double = 50,
        upstreamMark: UInt32? = nil,
        circuitBreakers: CircuitBreakerSettings = CircuitBreakerSettings(),
        outlierDetection: OutlierDetectionConfig? = nil,
        healthChecks: [HealthCheckConfig] = [],
        upstreamHTTP: UpstreamHTTPOptions = UpstreamHTTPOptions(),
        leastRequestActiveRequestBias: Double = 1.0,
        localityWeighted: Bool = false
    ) {
        self.name = name
        self.discovery = discovery
        self.connectTimeout = connectTimeout
        self.loadBalancing = loadBalancing
        self.loadAssignment = loadAssignment
        self.perConnectionBufferLimitBytes = perConnectionBufferLimitBytes
        self.healthyPanicThresholdPercent = healthyPanicThresholdPercent
        self.upstreamMark = upstreamMark
        self.circuitBreakers = circuitBreakers
        self.outlierDetection = outlierDetection
        self.healthChecks = healthChecks
        self.upstreamHTTP = upstreamHTTP
        self.leastRequestActiveRequestBias = leastRequestActiveRequestBias
        self.localityWeighted = localityWeighted
    }
}

/// Envoy's `DnsLookupFamily`.
public enum DNSLookupFamily: Hashable, Sendable {
    case v4Only, v6Only, auto, v4Preferred, all
}

/// How a host is chosen within a priority level.
public enum LoadBalancingPolicy: Hashable, Sendable {
    case roundRobin
    case random
    /// Power of `choiceCount` choices on active connections.
    case leastRequest(choiceCount: Int)
    /// The cluster type chooses (ORIGINAL_DST).
    case clusterProvided
    /// Ketama-style consistent hashing over a ring of host hashes (`RING_HASH`).
    case ringHash(RingHashSettings)
    /// Maglev consistent hashing over a prime-sized lookup table (`MAGLEV`).
    case maglev(tableSize: Int)

    /// Envoy's default Maglev table size (a prime).
    public static let defaultMaglevTableSize = 65537
}

/// `ring_hash_lb_config`.
public struct RingHashSettings: Hashable, Sendable {
    public var minimumRingSize: Int
    public var maximumRingSize: Int

    /// Envoy's defaults: at least 1024 entries, at most 8M.
    public init(minimumRingSize: Int = 1024, maximumRingSize: Int = 8_388_608) {
        self.minimumRingSize = minimumRingSize
        self.maximumRingSize = maximumRingSize
    }
}

/// Endpoints grouped by locality and priority (Envoy's `ClusterLoadAssignment`).
public struct LoadAssignment: Hashable, Sendable {
    public var localities: [LocalityEndpoints]
    /// Envoy's default overprovisioning factor, 140%.
    public var overprovisioningFactor: Double

    public init(localities: [LocalityEndpoints] = [], overprovisioningFactor: Double = 1.4) {
        self.localities = localities
        self.overprovisioningFactor = overprovisioningFactor
    }
}

/// Region, zone and sub-zone of a group of endpoints.
public struct Locality: Hashable, Sendable {
    public var region: String
    public var zone: String
    public var subZone: String

    public init(region: String = "", zone: String = "", subZone: String = "") {
        self.region = region
        self.zone = zone
        self.subZone = subZone
    }
}

/// The endpoints of one locality at one priority.
public struct LocalityEndpoints: Hashable, Sendable {
    public var locality: Locality
    public var priority: Int
    /// `load_balancing_weight`; nil when unset (the locality then takes no locality-weighted traffic).
    public var weight: UInt32?
    public var endpoints: [Endpoint]

    public init(locality: Locality = Locality(), priority: Int = 0, weight: UInt32? = nil, endpoints: [Endpoint]) {
        self.locality = locality
        self.priority = priority
        self.weight = weight
        self.endpoints = endpoints
    }
}

/// One upstream endpoint.
public struct Endpoint: Hashable, Sendable {
    public var address: EndpointAddress
    public var weight: UInt32
    public var health: HealthStatus

    public init(address: EndpointAddress, weight: UInt32 = 1, health: HealthStatus = .unknown) {
        self.address = address
        self.weight = weight
        self.health = health
    }
}

/// An endpoint's address: a literal, a name that DNS turns into hosts, or a Unix socket.
public enum EndpointAddress: Hashable, Sendable, CustomStringConvertible {
    case ip(SocketEndpoint)
    case hostname(String, port: UInt16)
    /// A Unix socket (Envoy's `pipe`); used to reach a control plane, not proxied to.
    case pipe(path: String)

    public var description: String {
        switch self {
        case .ip(let endpoint): return endpoint.description
        case .hostname(let name, let port): return "\(name):\(port)"
        case .pipe(let path): return "unix:\(path)"
        }
    }
}

/// Envoy's `HealthStatus` as reported by discovery.
public enum HealthStatus: String, Hashable, Sendable {
    case unknown, healthy, unhealthy, draining, timeout, degraded

    /// Whether the load balancer may send new connections to the host.
    public var acceptsTraffic: Bool {
        switch self {
        case .unknown, .healthy, .degraded: return true
        case .unhealthy, .draining, .timeout: return false
        }
    }
}
