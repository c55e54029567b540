import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// A cluster's outlier detection at run time: applies `OutlierDetectorState`'s decisions to
/// the hosts (ejected hosts leave the load balancer's healthy set) and keeps Envoy's
/// `cluster.<name>.outlier_detection.*` stats.
public final class OutlierDetector: Sendable {
    public let config: OutlierDetectionConfig
    private let state: NIOLockedValueBox<OutlierDetectorState>
    private let stats: OutlierDetectionStats
    /// Called after a host was ejected or returned, so the cluster recomputes its host set.
    private let healthChanged: @Sendable () -> Void
    private let hostsInCluster: @Sendable () -> [UpstreamHost]
    private let roll: @Sendable () -> Int

    init(
        cluster: String, config: OutlierDetectionConfig, store: StatsStore,
        hosts: @escaping @Sendable () -> [UpstreamHost], healthChanged: @escaping @Sendable () -> Void,
        roll: @escaping @Sendable () -> Int = { Int.random(in: 0..<100) }
    ) {
        self.config = config
        self.state = NIOLockedValueBox(OutlierDetectorState(config: config))
        self.stats = OutlierDetectionStats(cluster: cluster, store: store)
        self.hostsInCluster = hosts
        self.healthChanged = healthChanged
        self.roll = roll
    }

    /// Reports the outcome of one attempt on `host`. The router calls this for every upstream
    /// response (`.httpResponse`) and local failure; the TCP proxy for connect results.
    public func record(host: UpstreamHost, event: OutlierEvent, now: UInt64 = NIODeadline.now().uptimeNanoseconds) {
        let hostCount = hostsInCluster().count
        let jitterLimit = OutlierDetectorState.nanoseconds(config.maxEjectionTimeJitter)
        let roll = self.roll
        let decisions = state.withLockedValue {
            $0.record(event, host: ObjectIdentifier(host), hostCount: hostCount, now: now, roll: roll,
                      jitter: { jitterLimit == 0 ? 0 : UInt64.random(in: 0...jitterLimit) })
        }
        apply(decisions, hosts: [ObjectIdentifier(host): host])
    }

    /// The interval timer (every `config.interval`): returns hosts whose ejection ran out.
    public func intervalElapsed(now: UInt64 = NIODeadline.now().uptimeNanoseconds) {
        let hosts = hostsInCluster()
        let decisions = state.withLockedValue { state in
            state.retain(Set(hosts.map(ObjectIdentifier.init)))
            return state.intervalElapsed(now: now)
        }
        apply(decisions, hosts: Dictionary(hosts.map { (ObjectIdentifier($0), $0) }, uniquingKeysWith: { first, _ in first }))
    }

    /// A successful active health check returns an ejected host when
    /// `successful_active_health_check_uneject_host` is set.
    func activeHealthCheckSucceeded(_ host: UpstreamHost) {
        guard config.successfulActiveHealthCheckUnejectHost else { return }
        let decisions = state.withLockedValue { $0.uneject(ObjectIdentifier(host)) }
        apply(decisions, hosts: [ObjectIdentifier(host): host])
    }

    private func apply(_ decisions: [OutlierDetectorState.Decision], hosts: [ObjectIdentifier: UpstreamHost]) {
        var changed = false
        for decision in decisions {
            switch decision {
            case .detected(_, let reason, let enforced, let overflow):
                stats.detected(reason).increment()
                stats.ejectionsTotal.increment()
                if enforced && overflow { stats.ejectionsOverflow.increment() }
            case .ejected(let id, let reason):
                stats.enforced(reason).increment()
                stats.ejectionsEnforcedTotal.increment()
                stats.ejectionsActive.increment()
                if let host = hosts[id] { changed = host.setFlag(UpstreamHost.HealthFlag.failedOutlierCheck, true) || changed }
            case .unejected(let id):
                stats.ejectionsActive.decrement()
                if let host = hosts[id] { changed = host.setFlag(UpstreamHost.HealthFlag.failedOutlierCheck, false) || changed }
            }
        }
        if changed { healthChanged() }
    }
}

/// `cluster.<name>.outlier_detection.*`.
struct OutlierDetectionStats: Sendable {
    let ejectionsActive: Gauge
    let ejectionsOverflow: Counter
    let ejectionsEnforcedTotal: Counter
    let ejectionsTotal: Counter
    private let detectedByReason: [OutlierEjectionReason: Counter]
    private let enforcedByReason: [OutlierEjectionReason: Counter]

    init(cluster: String, store: StatsStore) {
        func name(_ leaf: String) -> StatName { .cluster(cluster, "outlier_detection.\(leaf)") }
        ejectionsActive = store.gauge(name("ejections_active"))
        ejectionsOverflow = store.counter(name("ejections_overflow"))
        ejectionsEnforcedTotal = store.counter(name("ejections_enforced_total"))
        ejectionsTotal = store.counter(name("ejections_total"))
        var detected: [OutlierEjectionReason: Counter] = [:]
        var enforced: [OutlierEjectionReason: Counter] = [:]
        for reason in [OutlierEjectionReason.consecutive5xx, .consecutiveGatewayFailure, .consecutiveLocalOriginFailure] {
            detected[reason] = store.counter(name("ejections_detected_\(reason.rawValue)"))
            enforced[reason] = store.counter(name("ejections_enforced_\(reason.rawValue)"))
        }
        detectedByReason = detected
        enforcedByReason = enforced
    }

    func detected(_ reason: OutlierEjectionReason) -> Counter { detectedByReason[reason]! }
    func enforced(_ reason: OutlierEjectionReason) -> Counter { enforcedByReason[reason]! }
}
