import SluiceModel

/// The outcome of one active health check.
public enum HealthCheckResult: Sendable, Equatable {
    case success
    /// The host answered, wrongly (an HTTP status outside the expected ranges): Envoy marks the
    /// host unhealthy at once, without waiting for the unhealthy threshold.
    case activeFailure
    /// No usable answer (connect failure, reset, timeout): counts toward the unhealthy threshold.
    case networkFailure
}

/// Envoy's health-check bookkeeping for one host as a value type: thresholds, the first-check
/// shortcut and the choice of the next interval.
struct HealthCheckSessionState {
    /// How a check changed the host's health.
    enum Transition: Equatable {
        case unchanged
        /// Moving toward a change that needs more checks (below the threshold).
        case pending
        case becameHealthy
        case becameUnhealthy
    }

    let config: HealthCheckConfig
    /// Envoy's FAILED_ACTIVE_HC: hosts start failed until their first check passes.
    private(set) var failed: Bool
    private var firstCheck = true
    private var consecutiveSuccesses = 0
    private var consecutiveFailures = 0

    init(config: HealthCheckConfig, startsFailed: Bool = true) {
        self.config = config
        self.failed = startsFailed
    }

    mutating func record(_ result: HealthCheckResult) -> Transition {
        defer { firstCheck = false }
        switch result {
        case .success:
            consecutiveFailures = 0
            guard failed else { return .unchanged }
            consecutiveSuccesses += 1
            // The first result of a new host marks it healthy at once (Envoy's faster start).
            if firstCheck || consecutiveSuccesses >= config.healthyThreshold {
                failed = false
                consecutiveSuccesses = 0
                return .becameHealthy
            }
            return .pending
        case .activeFailure, .networkFailure:
            consecutiveSuccesses = 0
            guard !failed else { return .unchanged }
            consecutiveFailures += 1
            if result == .activeFailure || consecutiveFailures >= config.unhealthyThreshold {
                failed = true
                consecutiveFailures = 0
                return .becameUnhealthy
            }
            return .pending
        }
    }

    /// The delay before the next check, without jitter. Before the cluster has carried traffic
    /// the no-traffic intervals apply; afterwards the edge intervals follow a change and the
    /// unhealthy interval applies while the host is unhealthy.
    func nextInterval(after transition: Transition, clusterHasTraffic: Bool) -> Duration {
        guard clusterHasTraffic else {
            return failed ? config.noTrafficInterval : (config.noTrafficHealthyInterval ?? config.noTrafficInterval)
        }
        let unhealthy = config.unhealthyInterval ?? config.interval
        switch transition {
        case .becameUnhealthy: return config.unhealthyEdgeInterval ?? unhealthy
        case .becameHealthy: return config.healthyEdgeInterval ?? config.interval
        case .unchanged, .pending: return failed ? unhealthy : config.interval
        }
    }

    /// Adds `interval_jitter` and `interval_jitter_percent` jitter; `random(n)` is uniform in 0..<n.
    func jittered(_ interval: Duration, random: (Int64) -> Int64) -> Duration {
        var millis = Self.milliseconds(interval)
        if config.intervalJitterPercent > 0 {
            let span = millis * Int64(config.intervalJitterPercent) / 100
            if span > 0 { millis += random(span) }
        }
        let jitter = Self.milliseconds(config.intervalJitter)
        if jitter > 0 { millis += random(jitter) }
        return .milliseconds(millis)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
