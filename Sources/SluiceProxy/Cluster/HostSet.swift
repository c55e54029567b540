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
        /// The level's hosts by locality, in Envoy's order (region, zone, sub-zone).
        public let localities: [LocalityHosts]
    }

    /// The hosts of one locality within a priority level.
    public struct LocalityHosts: Sendable {
        public let locality: Locality
        public let hosts: [UpstreamHost]
        public let healthyHosts: [UpstreamHost]
        /// The locality's `load_balancing_weight`, 0 when it has none.
        public let weight: UInt32
        /// The weight scaled by availability, min(1, overprovisioning × healthy / total), which
        /// locality-weighted balancing picks by (Envoy's effective locality weight).
        public let effectiveWeight: Double
    }

    public let levels: [Level]
    /// Percent of traffic per priority; sums to 100 when any host exists.
    public let priorityLoad: [Int]
    public let allHosts: [UpstreamHost]
    let overprovisioningFactor: Double

    public init(hosts: [UpstreamHost], overprovisioningFactor: Double = 1.4, panicThresholdPercent: Double = 50) {
        self.overprovisioningFactor = overprovisioningFactor
        let maxPriority = hosts.map(\.priority).max() ?? 0
        var grouped: [(hosts: [UpstreamHost], healthy: [UpstreamHost])] = []
        var health: [Int] = []
        for priority in 0...maxPriority {
            let levelHosts = hosts.filter { $0.priority == priority }
            let healthy = levelHosts.filter(\.isHealthy)
            grouped.append((levelHosts, healthy))
            let provisioned = levelHosts.isEmpty
                ? 0 : Int(overprovisioningFactor * 100 * Double(healthy.count) / Double(levelHosts.count))
            health.append(min(100, provisioned))
        }
        // Envoy: no level panics while the levels together can take all traffic; an empty level
        // counts as panicking; with every level panicking, load follows host counts instead.
        let totalHealth = min(100, health.reduce(0, +))
        let panics = grouped.map { level in
            let percent = level.hosts.isEmpty ? 0 : Double(level.healthy.count) * 100 / Double(level.hosts.count)
            return percent < panicThresholdPercent && totalHealth < 100
        }
        self.levels = grouped.indices.map { index in
            Level(
                hosts: grouped[index].hosts, healthyHosts: grouped[index].healthy, inPanic: panics[index],
                localities: Self.localities(of: grouped[index].hosts, overprovisioningFactor: overprovisioningFactor))
        }
        self.allHosts = hosts
        if let firstNonEmpty = grouped.firstIndex(where: { !$0.hosts.isEmpty }), panics.allSatisfy({ $0 }) {
            var load = grouped.map { $0.hosts.count * 100 / hosts.count }
            load[firstNonEmpty] += 100 - load.reduce(0, +)
            self.priorityLoad = load
        } else {
            self.priorityLoad = HostSet.distributeLoad(health: health)
        }
    }

    private static func localities(of hosts: [UpstreamHost], overprovisioningFactor: Double) -> [LocalityHosts] {
        var order: [Locality] = []
        var members: [Locality: [UpstreamHost]] = [:]
        for host in hosts {
            if members[host.locality] == nil { order.append(host.locality) }
            members[host.locality, default: []].append(host)
        }
        order.sort { ($0.region, $0.zone, $0.subZone) < ($1.region, $1.zone, $1.subZone) }
        return order.map { locality in
            let hosts = members[locality]!
            let healthy = hosts.filter(\.isHealthy)
            // Envoy keeps one weight per locality: the last group listing one wins.
            let weight = hosts.last(where: { $0.localityWeight != nil })?.localityWeight ?? 0
            let availability = min(1, overprovisioningFactor * Double(healthy.count) / Double(hosts.count))
            return LocalityHosts(
                locality: locality, hosts: hosts, healthyHosts: healthy, weight: weight,
                effectiveWeight: Double(weight) * availability)
        }
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
