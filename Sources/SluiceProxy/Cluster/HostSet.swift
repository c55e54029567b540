import SluiceModel

/// An immutable snapshot of a cluster's hosts grouped by priority, with the share of traffic
/// each priority gets computed the way Envoy does (overprovisioning factor and panic threshold).
public final class HostSet: Sendable {
    /// Hosts of one priority level.
    public struct Level: Sendable {
        public let hosts: [UpstreamHost]
        public let healthyHosts: [UpstreamHost]
        /// Fewer healthy hosts than the panic threshold: balance across all hosts of the level.
        public let inPanic: Bool
    }

    public let levels: [Level]
    /// Percent of traffic per priority; sums to 100 when any host exists.
    public let priorityLoad: [Int]
    public let allHosts: [UpstreamHost]
    let overprovisioningFactor: Double

    public init(hosts: [UpstreamHost], overprovisioningFactor: Double = 1.4, panicThresholdPercent: Double = 50) {
        self.overprovisioningFactor = overprovisioningFactor
        let maxPriority = hosts.map(\.priority).max() ?? 0
        var levels: [Level] = []
        var health: [Int] = []
        for priority in 0...maxPriority {
            let levelHosts = hosts.filter { $0.priority == priority }
            let healthy = levelHosts.filter(\.isHealthy)
            let healthyPercent = levelHosts.isEmpty ? 0 : Double(healthy.count) * 100 / Double(levelHosts.count)
            levels.append(Level(
                hosts: levelHosts,
                healthyHosts: healthy,
                inPanic: !levelHosts.isEmpty && healthyPercent < panicThresholdPercent))
            let provisioned = levelHosts.isEmpty
                ? 0 : Int(overprovisioningFactor * 100 * Double(healthy.count) / Double(levelHosts.count))
            health.append(min(100, provisioned))
        }
        self.levels = levels
        self.allHosts = hosts
        self.priorityLoad = HostSet.distributeLoad(health: health)
    }

    /// Spreads 100% across priorities in order, each taking up to its (normalized) health.
    static func distributeLoad(health: [Int]) -> [Int] {
        var load = Array(repeating: 0, count: health.count)
        let total = min(100, health.reduce(0, +))
        guard total > 0, !load.isEmpty else {
            if !load.isEmpty { load[0] = 100 }
            return load
        }
        var remaining = 100
        for index in health.indices {
            let share = min(remaining, health[index] * 100 / total)
            load[index] = share
            remaining -= share
        }
        if remaining > 0, let first = health.firstIndex(where: { $0 > 0 }) {
            load[first] += remaining
        }
        return load
    }

    /// The level a pick should use for a uniformly random `percent` in 0..<100.
    func level(forPercent percent: Int) -> Level? {
        levelIndex(forPercent: percent).map { levels[$0] }
    }

    /// The index of the level for `percent` in 0..<100.
    func levelIndex(forPercent percent: Int) -> Int? {
        var cumulative = 0
        for (index, share) in priorityLoad.enumerated() {
            cumulative += share
            if percent < cumulative { return index }
        }
        return levels.isEmpty ? nil : 0
    }
}
