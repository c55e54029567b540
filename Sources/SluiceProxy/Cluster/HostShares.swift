/// A host and its share of a priority level's traffic, as RING_HASH and MAGLEV size their tables.
struct HostShare {
    let host: UpstreamHost
    let share: Double
}

extension HostShare {
    /// Shares in proportion to host weight, summing to 1.
    static func byHostWeight(_ hosts: [UpstreamHost], scaledTo total: Double = 1) -> [HostShare] {
        let sum = hosts.reduce(0.0) { $0 + Double($1.weight) }
        return hosts.map { HostShare(host: $0, share: Double($0.weight) * total / sum) }
    }

    /// Envoy's locality-weighted shares: each locality gets its weight over the sum of all the
    /// level's locality weights, split among its hosts by host weight. Availability does not scale
    /// them (Envoy does not either) and zero-weight localities get none, so with no locality
    /// weight at all there is no host to hash to.
    static func byLocalityWeight(_ localities: [HostSet.LocalityHosts], inPanic: Bool) -> [HostShare] {
        let total = localities.reduce(0.0) { $0 + Double($1.weight) }
        guard total > 0 else { return [] }
        return localities.flatMap { locality -> [HostShare] in
            let hosts = inPanic ? locality.hosts : locality.healthyHosts
            guard locality.weight > 0, !hosts.isEmpty else { return [] }
            return byHostWeight(hosts, scaledTo: Double(locality.weight) / total)
        }
    }
}
