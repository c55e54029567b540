import SluiceModel
import Synchronization

/// Envoy's routing priority of a request (`RoutingPriority`), which picks the circuit-breaker
/// thresholds it counts against.
public enum RoutingPriority: Sendable {
    case `default`, high
}

/// The kinds of resource a cluster's circuit breakers limit.
public enum UpstreamResource: Sendable, CaseIterable {
    case connections, pendingRequests, requests, retries
}

/// A cluster's circuit breakers: one limited counter per resource and routing priority, with
/// Envoy's `circuit_breakers.<priority>.*_open` gauges and overflow counters.
public final class CircuitBreakers: Sendable {
    private let defaultLimits: ResourceLimits
    private let highLimits: ResourceLimits
    private let connectionOverflow: Counter
    private let pendingOverflow: Counter
    private let retryOverflow: Counter

    init(cluster: String, settings: CircuitBreakerSettings, store: StatsStore) {
        defaultLimits = ResourceLimits(cluster: cluster, priority: "default", thresholds: settings.defaultPriority, store: store)
        highLimits = ResourceLimits(cluster: cluster, priority: "high", thresholds: settings.highPriority, store: store)
        connectionOverflow = store.counter(.cluster(cluster, "upstream_cx_overflow"))
        pendingOverflow = store.counter(.cluster(cluster, "upstream_rq_pending_overflow"))
        retryOverflow = store.counter(.cluster(cluster, "upstream_rq_retry_overflow"))
    }

    /// The limits of one priority.
    public func limits(_ priority: RoutingPriority) -> ResourceLimits {
        priority == .high ? highLimits : defaultLimits
    }

    /// Takes one unit of `resource`; false (and the overflow counter Envoy bumps) when the
    /// breaker is open. Every successful acquire needs one `release`.
    public func tryAcquire(_ resource: UpstreamResource, priority: RoutingPriority = .default) -> Bool {
        if limits(priority).limit(resource).tryAcquire() { return true }
        switch resource {
        case .connections: connectionOverflow.increment()
        // Envoy counts max_requests overflows under the pending-request counter too.
        case .pendingRequests, .requests: pendingOverflow.increment()
        case .retries: retryOverflow.increment()
        }
        return false
    }

    /// Returns one unit of `resource`.
    public func release(_ resource: UpstreamResource, priority: RoutingPriority = .default) {
        limits(priority).limit(resource).release()
    }
}

/// The four limited counters of one priority.
public final class ResourceLimits: Sendable {
    public let connections: ResourceLimit
    public let pendingRequests: ResourceLimit
    public let requests: ResourceLimit
    public let retries: ResourceLimit

    init(cluster: String, priority: String, thresholds: CircuitBreakerThresholds, store: StatsStore) {
        func make(_ max: Int, _ open: String, _ remaining: String) -> ResourceLimit {
            ResourceLimit(
                max: max,
                openGauge: store.gauge(.cluster(cluster, "circuit_breakers.\(priority).\(open)")),
                remainingGauge: thresholds.trackRemaining
                    ? store.gauge(.cluster(cluster, "circuit_breakers.\(priority).\(remaining)")) : nil)
        }
        connections = make(thresholds.maxConnections, "cx_open", "remaining_cx")
        pendingRequests = make(thresholds.maxPendingRequests, "rq_pending_open", "remaining_pending")
        requests = make(thresholds.maxRequests, "rq_open", "remaining_rq")
        retries = make(thresholds.maxRetries, "rq_retry_open", "remaining_retries")
    }

    public func limit(_ resource: UpstreamResource) -> ResourceLimit {
        switch resource {
        case .connections: return connections
        case .pendingRequests: return pendingRequests
        case .requests: return requests
        case .retries: return retries
        }
    }
}

/// One limited counter. `*_open` reads 1 while the count is at the limit.
public final class ResourceLimit: Sendable {
    public let max: Int
    private let current = Atomic<Int>(0)
    private let openGauge: Gauge
    private let remainingGauge: Gauge?

    init(max: Int, openGauge: Gauge, remainingGauge: Gauge?) {
        self.max = max
        self.openGauge = openGauge
        self.remainingGauge = remainingGauge
        publish(0)
    }

    /// Units in use.
    public var count: Int { current.load(ordering: .relaxed) }

    /// Whether one more unit may be taken now.
    public var canCreate: Bool { count < max }

    /// Takes a unit unless the limit is reached.
    public func tryAcquire() -> Bool {
        var value = current.load(ordering: .relaxed)
        while value < max {
            let (exchanged, original) = current.compareExchange(
                expected: value, desired: value + 1, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged {
                publish(value + 1)
                return true
            }
            value = original
        }
        return false
    }

    public func release() {
        let value = current.subtract(1, ordering: .relaxed).newValue
        if value < 0 {
            // A release without an acquire is a caller bug; never let the count go negative.
            current.add(1, ordering: .relaxed)
            return
        }
        publish(value)
    }

    private func publish(_ value: Int) {
        openGauge.set(value >= max ? 1 : 0)
        remainingGauge?.set(Int64(Swift.max(max - value, 0)))
    }
}
