import SluiceModel

/// What the data path tells outlier detection about one attempt on a host.
public enum OutlierEvent: Sendable, Equatable {
    /// A response from the host (external origin), by status code.
    case httpResponse(status: Int)
    /// The connection to the host could not be made (local origin).
    case connectFailed
    /// The host did not answer in time (local origin).
    case timeout
    /// The connection was reset before a response (local origin).
    case reset
    /// The connection was made; more results (the response) follow.
    case connectSucceeded
    /// The connection was made and nothing else will be reported (TCP proxying).
    case connectSucceededFinal
}

/// Why a host was ejected, named as in Envoy's stats.
public enum OutlierEjectionReason: String, Sendable {
    case consecutive5xx = "consecutive_5xx"
    case consecutiveGatewayFailure = "consecutive_gateway_failure"
    case consecutiveLocalOriginFailure = "consecutive_local_origin_failure"
}

/// The decisions of Envoy's consecutive-error outlier detectors as a value type: feed it events
/// and interval ticks with the current time, apply the decisions it returns.
struct OutlierDetectorState {
    /// What happened as a result of an event or tick.
    enum Decision: Equatable {
        /// A detector fired; `enforced` says whether the enforcing percentage let it eject, and
        /// `overflow` that max_ejection_percent stopped an enforced ejection.
        case detected(host: ObjectIdentifier, reason: OutlierEjectionReason, enforced: Bool, overflow: Bool)
        case ejected(host: ObjectIdentifier, reason: OutlierEjectionReason)
        case unejected(host: ObjectIdentifier)
    }

    private struct HostState {
        var consecutive5xx = 0
        var consecutiveGatewayFailure = 0
        var consecutiveLocalOriginFailure = 0
        /// Times ejected, decremented on intervals the host spends un-ejected (Envoy's back-off).
        var ejectionCount = 0
        var ejectedAt: UInt64?
        var ejectedFor: UInt64 = 0
    }

    let config: OutlierDetectionConfig
    private var hosts: [ObjectIdentifier: HostState] = [:]

    init(config: OutlierDetectionConfig) {
        self.config = config
    }

    var ejectedCount: Int { hosts.values.filter { $0.ejectedAt != nil }.count }

    func isEjected(_ host: ObjectIdentifier) -> Bool { hosts[host]?.ejectedAt != nil }

    /// Forgets hosts no longer in the cluster.
    mutating func retain(_ live: Set<ObjectIdentifier>) {
        hosts = hosts.filter { live.contains($0.key) }
    }

    /// Records one event. `hostCount` is the cluster's size (for max_ejection_percent),
    /// `roll` returns a uniform number in 0..<100 (for the enforcing percentages) and
    /// `jitter` a number of nanoseconds in 0...max_ejection_time_jitter.
    mutating func record(
        _ event: OutlierEvent, host: ObjectIdentifier, hostCount: Int, now: UInt64,
        roll: () -> Int = { Int.random(in: 0..<100) }, jitter: () -> UInt64 = { 0 }
    ) -> [Decision] {
        var state = hosts[host] ?? HostState()
        defer { hosts[host] = state }
        if state.ejectedAt != nil { return [] }
        var fired: [OutlierEjectionReason] = []
        switch classify(event) {
        case .status(let status):
            if status >= 500 {
                if [502, 503, 504].contains(status) {
                    state.consecutiveGatewayFailure += 1
                    if state.consecutiveGatewayFailure == config.consecutiveGatewayFailure {
                        state.consecutiveGatewayFailure = 0
                        fired.append(.consecutiveGatewayFailure)
                    }
                } else {
                    state.consecutiveGatewayFailure = 0
                }
                state.consecutive5xx += 1
                if state.consecutive5xx == config.consecutive5xx {
                    state.consecutive5xx = 0
                    fired.append(.consecutive5xx)
                }
            } else {
                state.consecutive5xx = 0
                state.consecutiveGatewayFailure = 0
            }
        case .localFailure:
            state.consecutiveLocalOriginFailure += 1
            if state.consecutiveLocalOriginFailure == config.consecutiveLocalOriginFailure {
                state.consecutiveLocalOriginFailure = 0
                fired.append(.consecutiveLocalOriginFailure)
            }
        case .localSuccess:
            state.consecutiveLocalOriginFailure = 0
        case .ignored:
            break
        }
        var decisions: [Decision] = []
        for reason in fired where state.ejectedAt == nil {
            let enforced = roll() < enforcingPercent(reason)
            guard enforced else {
                decisions.append(.detected(host: host, reason: reason, enforced: false, overflow: false))
                continue
            }
            let active = ejectedCount
            let percentAfter = Double(active + 1) * 100 / Double(max(hostCount, 1))
            let allowed = percentAfter <= Double(config.maxEjectionPercent) || (config.alwaysEjectOneHost && active == 0)
            decisions.append(.detected(host: host, reason: reason, enforced: true, overflow: !allowed))
            guard allowed else { continue }
            state.ejectionCount += 1
            state.ejectedAt = now
            state.ejectedFor = ejectionDuration(times: state.ejectionCount) &+ jitter()
            state.consecutive5xx = 0
            state.consecutiveGatewayFailure = 0
            state.consecutiveLocalOriginFailure = 0
            decisions.append(.ejected(host: host, reason: reason))
        }
        return decisions
    }

    /// The interval timer: returns hosts whose ejection has run out; hosts that stayed in
    /// service lower their ejection multiplier by one.
    mutating func intervalElapsed(now: UInt64) -> [Decision] {
        var decisions: [Decision] = []
        for (host, var state) in hosts {
            if let since = state.ejectedAt {
                if now >= since &+ state.ejectedFor {
                    state.ejectedAt = nil
                    decisions.append(.unejected(host: host))
                }
            } else if state.ejectionCount > 0 {
                state.ejectionCount -= 1
            }
            hosts[host] = state
        }
        return decisions
    }

    /// Returns an ejected host at once (a successful active health check, when configured),
    /// clearing its error counters as Envoy does.
    mutating func uneject(_ host: ObjectIdentifier) -> [Decision] {
        guard var state = hosts[host], state.ejectedAt != nil else { return [] }
        state.ejectedAt = nil
        state.consecutive5xx = 0
        state.consecutiveGatewayFailure = 0
        state.consecutiveLocalOriginFailure = 0
        hosts[host] = state
        return [.unejected(host: host)]
    }

    /// base_ejection_time × times ejected, capped at max(max_ejection_time, base_ejection_time).
    func ejectionDuration(times: Int) -> UInt64 {
        let base = Self.nanoseconds(config.baseEjectionTime)
        let cap = max(Self.nanoseconds(config.maxEjectionTime), base)
        let (product, overflow) = base.multipliedReportingOverflow(by: UInt64(max(times, 1)))
        return overflow ? cap : min(product, cap)
    }

    private enum Classified {
        case status(Int), localFailure, localSuccess, ignored
    }

    /// Without split_external_local_origin_errors local-origin events count as the HTTP codes
    /// Envoy maps them to (connect failure and reset 503, timeout 504, final success 200).
    private func classify(_ event: OutlierEvent) -> Classified {
        if config.splitExternalLocalOriginErrors {
            switch event {
            case .httpResponse(let status): return .status(status)
            case .connectFailed, .timeout, .reset: return .localFailure
            case .connectSucceeded, .connectSucceededFinal: return .localSuccess
            }
        }
        switch event {
        case .httpResponse(let status): return .status(status)
        case .connectFailed, .reset: return .status(503)
        case .timeout: return .status(504)
        case .connectSucceeded: return .ignored
        case .connectSucceededFinal: return .status(200)
        }
    }

    private func enforcingPercent(_ reason: OutlierEjectionReason) -> Int {
        switch reason {
        case .consecutive5xx: return config.enforcingConsecutive5xx
        case .consecutiveGatewayFailure: return config.enforcingConsecutiveGatewayFailure
        case .consecutiveLocalOriginFailure: return config.enforcingConsecutiveLocalOriginFailure
        }
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(seconds, 0)) &* 1_000_000_000 &+ UInt64(max(attoseconds, 0) / 1_000_000_000)
    }
}
