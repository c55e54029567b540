import SluiceModel

/// Envoy's RING_HASH ring: each host gets hash entries in proportion to its weight, scaled so
/// the lightest host has a whole number of entries and the ring has at least the minimum size
/// (never more than the maximum); a request hash maps to the first entry at or after it.
struct HashRing {
    private(set) var hashes: [UInt64] = []
    private(set) var hosts: [UpstreamHost] = []

    init(hosts candidates: [UpstreamHost], settings: RingHashSettings) {
        guard !candidates.isEmpty else { return }
        let totalWeight = candidates.reduce(0.0) { $0 + Double($1.weight) }
        let normalized = candidates.map { Double($0.weight) / totalWeight }
        let minimumWeight = normalized.min() ?? 1
        let scale = min((minimumWeight * Double(settings.minimumRingSize)).rounded(.up) / minimumWeight,
                        Double(settings.maximumRingSize))
        var entries: [(hash: UInt64, host: UpstreamHost)] = []
        entries.reserveCapacity(Int(scale.rounded(.up)))
        // Running sums keep fractional shares stable across hosts (Envoy's construction).
        var current = 0.0
        var target = 0.0
        for (index, host) in candidates.enumerated() {
            target += scale * normalized[index]
            var replica = 0
            let prefix = host.address.description + "_"
            while current < target {
                entries.append((XXHash64.hash(prefix + String(replica)), host))
                replica += 1
                current += 1
            }
        }
        entries.sort { $0.hash < $1.hash }
        hashes = entries.map(\.hash)
        hosts = entries.map(\.host)
    }

    var isEmpty: Bool { hashes.isEmpty }

    /// The host owning `hash`; `attempt` > 0 walks further along the ring (retries).
    func host(for hash: UInt64, attempt: Int = 0) -> UpstreamHost? {
        guard !hashes.isEmpty else { return nil }
        var low = 0
        var high = hashes.count
        while low < high {
            let middle = (low + high) / 2
            if hashes[middle] < hash { low = middle + 1 } else { high = middle }
        }
        let index = low == hashes.count ? 0 : low
        return hosts[(index + attempt) % hosts.count]
    }
}
