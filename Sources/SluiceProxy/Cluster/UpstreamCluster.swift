import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// A cluster at run time: its current hosts, its load balancer and its stats.
public final class UpstreamCluster: Sendable {
    public let config: ClusterConfig
    public let stats: ClusterStats
    private let balancer: LoadBalancer
    private let hosts: NIOLockedValueBox<HostSet>
    /// Hosts created on demand for original-destination clusters, by address.
    private let dynamicHosts = NIOLockedValueBox<[SocketEndpoint: UpstreamHost]>([:])
    private let initialized: NIOLockedValueBox<Bool>
    /// Limits on connections, pending requests, requests and retries (`circuit_breakers`).
    public let circuitBreakers: CircuitBreakers
    /// Passive health checking; nil when the cluster has no `outlier_detection`.
    public let outlierDetector: OutlierDetector?
    /// `cluster.<name>.health_check.*`, present when the cluster has active health checks.
    let healthCheckStats: HealthCheckStats?

    init(config: ClusterConfig, store: StatsStore) {
        self.config = config
        self.stats = ClusterStats(cluster: config.name, store: store)
        self.balancer = LoadBalancer(
            policy: config.loadBalancing, activeRequestBias: config.leastRequestActiveRequestBias,
            localityWeighted: config.localityWeighted)
        self.circuitBreakers = CircuitBreakers(cluster: config.name, settings: config.circuitBreakers, store: store)
        self.healthCheckStats = config.healthChecks.isEmpty ? nil : HealthCheckStats(cluster: config.name, store: store)
        let staticHosts = Self.hosts(from: config.loadAssignment)
        // With active health checking a host is unhealthy until its first check passes (Envoy).
        if !config.healthChecks.isEmpty {
            for host in staticHosts { host.setFlag(UpstreamHost.HealthFlag.failedActiveHealthCheck, true) }
        }
        let box = NIOLockedValueBox(WeakClusterReference())
        self.hosts = NIOLockedValueBox(
            HostSet(
                hosts: staticHosts,
                overprovisioningFactor: config.loadAssignment.overprovisioningFactor,
                panicThresholdPercent: config.healthyPanicThresholdPercent))
        if case .strictDNS = config.discovery {
            initialized = NIOLockedValueBox(false)
        } else {
            initialized = NIOLockedValueBox(true)
        }
        if let detection = config.outlierDetection {
            outlierDetector = OutlierDetector(
                cluster: config.name, config: detection, store: store,
                hosts: { box.withLockedValue { $0.cluster }?.hostSet.allHosts ?? [] },
                healthChanged: { box.withLockedValue { $0.cluster }?.hostHealthChanged() })
        } else {
            outlierDetector = nil
        }
        updateMembershipStats()
        box.withLockedValue { $0.cluster = self }
    }

    /// Recomputes the host set after a host's health flags changed (health check, ejection),
    /// so priority loads, panic and the healthy lists follow, as Envoy does.
    func hostHealthChanged() {
        hosts.withLockedValue { current in
            current = HostSet(
                hosts: current.allHosts, overprovisioningFactor: current.overprovisioningFactor,
                panicThresholdPercent: config.healthyPanicThresholdPercent)
        }
        updateMembershipStats()
    }

    /// Whether the first host discovery has finished (DNS clusters start uninitialized).
    public var isInitialized: Bool { initialized.withLockedValue { $0 } }

    public var hostSet: HostSet { hosts.withLockedValue { $0 } }

    /// Every host, including on-demand original-destination hosts.
    public var allHosts: [UpstreamHost] {
        if case .originalDestination = config.discovery {
            return dynamicHosts.withLockedValue { Array($0.values) }.sorted { $0.address.description < $1.address.description }
        }
        return hostSet.allHosts
    }

    /// Picks the host for a new upstream connection; nil when none is available.
    func chooseHost(originalDestination: SocketEndpoint?, excluding excluded: Set<ObjectIdentifier>) -> UpstreamHost? {
        chooseHost(LoadBalancerContext(hostsToAvoid: excluded, originalDestination: originalDestination))
    }

    /// Picks the host for a request or connection: the load balancer over the healthy hosts
    /// (all hosts of a priority in panic), honouring the context's hash and hosts to avoid;
    /// nil when none is available (the caller counts `upstream_cx_none_healthy` and answers 503).
    public func chooseHost(_ context: LoadBalancerContext) -> UpstreamHost? {
        if case .originalDestination = config.discovery {
            guard let destination = context.originalDestination else { return nil }
            return dynamicHosts.withLockedValue { hosts in
                if let existing = hosts[destination] { return existing }
                let host = UpstreamHost(address: destination, health: .healthy)
                hosts[destination] = host
                stats.membershipTotal.set(Int64(hosts.count))
                stats.membershipHealthy.set(Int64(hosts.count))
                return host
            }
        }
        return balancer.choose(from: hostSet, context: context)
    }

    /// The host a connection taken over from another process is connected to: the current host
    /// with that address, else one that only carries its stats (the host left the cluster).
    func host(adopting address: SocketEndpoint) -> UpstreamHost {
        if case .originalDestination = config.discovery, let host = chooseHost(originalDestination: address, excluding: []) {
            return host
        }
        return hostSet.allHosts.first { $0.address == address } ?? UpstreamHost(address: address)
    }

    /// Replaces the host set (DNS refresh, discovery), keeping the stats of unchanged hosts;
    /// true when some host left the cluster.
    @discardableResult
    func replaceHosts(_ newHosts: [UpstreamHost], overprovisioningFactor: Double? = nil) -> Bool {
        let factor = overprovisioningFactor ?? config.loadAssignment.overprovisioningFactor
        let activelyChecked = !config.healthChecks.isEmpty
        let departed = hosts.withLockedValue { current in
            let merged = newHosts.map { candidate in
                if let existing = current.allHosts.first(where: { $0.hasSameDiscoveryData(as: candidate) }) { return existing }
                if activelyChecked { candidate.setFlag(UpstreamHost.HealthFlag.failedActiveHealthCheck, true) }
                return candidate
            }
            let kept = Set(merged.map(ObjectIdentifier.init))
            let departed = current.allHosts.filter { !kept.contains(ObjectIdentifier($0)) }
            current = HostSet(hosts: merged, overprovisioningFactor: factor, panicThresholdPercent: config.healthyPanicThresholdPercent)
            return departed
        }
        for host in departed { host.markLeftCluster() }
        initialized.withLockedValue { $0 = true }
        updateMembershipStats()
        return !departed.isEmpty
    }

    /// Marks every host as gone: the cluster was removed or replaced by a new cluster object.
    func retireHosts() {
        for host in allHosts { host.markLeftCluster() }
    }

    /// Forgets idle original-destination hosts not used within `maxIdle`; true when any went.
    @discardableResult
    func removeIdleDynamicHosts(olderThan cutoff: UInt64) -> Bool {
        dynamicHosts.withLockedValue { hosts in
            let idle = hosts.values.filter { $0.connectionsActive.value == 0 && $0.lastUsed < cutoff }
            for host in idle {
                host.markLeftCluster()
                hosts[host.address] = nil
            }
            stats.membershipTotal.set(Int64(hosts.count))
            stats.membershipHealthy.set(Int64(hosts.count))
            return !idle.isEmpty
        }
    }

    private func updateMembershipStats() {
        let set = hostSet
        stats.membershipTotal.set(Int64(set.allHosts.count))
        stats.membershipHealthy.set(Int64(set.allHosts.filter(\.isHealthy).count))
    }

    /// Whether `other` differs from this cluster's configuration in its endpoint list alone, which
    /// can be applied to this cluster in place (EDS and STATIC endpoints have no other state).
    func differsOnlyInEndpoints(from other: ClusterConfig) -> Bool {
        switch config.discovery {
        case .eds, .staticEndpoints:
            var adjusted = other
            adjusted.loadAssignment = config.loadAssignment
            return adjusted == config
        case .strictDNS, .originalDestination:
            return false
        }
    }

    static func hosts(from assignment: LoadAssignment) -> [UpstreamHost] {
        assignment.localities.flatMap { locality in
            locality.endpoints.compactMap { endpoint -> UpstreamHost? in
                guard case .ip(let address) = endpoint.address else { return nil }
                return UpstreamHost(
                    address: address, weight: endpoint.weight, health: endpoint.health,
                    locality: locality.locality, localityWeight: locality.weight, priority: locality.priority)
            }
        }
    }
}

/// Lets a cluster's helpers reach it without keeping it alive.
struct WeakClusterReference: Sendable {
    weak var cluster: UpstreamCluster?
}

/// Envoy's `cluster.<name>.*` stats.
public struct ClusterStats: Sendable {
    public let upstreamConnectionsTotal: Counter
    public let upstreamConnectionsActive: Gauge
    public let upstreamConnectFailures: Counter
    public let upstreamConnectTimeouts: Counter
    public let upstreamConnectAttemptsExceeded: Counter
    public let upstreamNoneHealthy: Counter
    public let upstreamConnectionsDestroyed: Counter
    public let upstreamConnectionsDestroyedLocal: Counter
    public let upstreamConnectionsDestroyedRemote: Counter
    public let upstreamBytesReceived: Counter
    public let upstreamBytesSent: Counter
    public let upstreamFlowControlPaused: Counter
    public let upstreamFlowControlResumed: Counter
    public let membershipTotal: Gauge
    public let membershipHealthy: Gauge

    init(cluster: String, store: StatsStore) {
        func counter(_ leaf: String) -> Counter { store.counter(.cluster(cluster, leaf)) }
        func gauge(_ leaf: String) -> Gauge { store.gauge(.cluster(cluster, leaf)) }
        upstreamConnectionsTotal = counter("upstream_cx_total")
        upstreamConnectionsActive = gauge("upstream_cx_active")
        upstreamConnectFailures = counter("upstream_cx_connect_fail")
        upstreamConnectTimeouts = counter("upstream_cx_connect_timeout")
        upstreamConnectAttemptsExceeded = counter("upstream_cx_connect_attempts_exceeded")
        upstreamNoneHealthy = counter("upstream_cx_none_healthy")
        upstreamConnectionsDestroyed = counter("upstream_cx_destroy")
        upstreamConnectionsDestroyedLocal = counter("upstream_cx_destroy_local")
        upstreamConnectionsDestroyedRemote = counter("upstream_cx_destroy_remote")
        upstreamBytesReceived = counter("upstream_cx_rx_bytes_total")
        upstreamBytesSent = counter("upstream_cx_tx_bytes_total")
        upstreamFlowControlPaused = counter("upstream_flow_control_paused_reading_total")
        upstreamFlowControlResumed = counter("upstream_flow_control_resumed_reading_total")
        membershipTotal = gauge("membership_total")
        membershipHealthy = gauge("membership_healthy")
    }
}
