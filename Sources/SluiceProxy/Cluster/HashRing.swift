import SluiceModel

/// Envoy's RING_HASH ring: each host gets hash entries in proportion to its weight, scaled so
/// the lightest host has a whole number of entries and the ring has at least the minimum size
/// (never more than the maximum); a request hash maps to the first entry at or after it.
struct HashRing {
    private(set) var hashes: [UInt64] = []
    private(set) var hosts: [UpstreamHost] = []

    init(hosts: [UpstreamHost], settings: RingHashSettings) {
        self.init(shares: HostShare.byHostWeight(hosts), settings: settings)
    }

    init(shares: [HostShare], settings: RingHashSettings) {
        guard !shares.isEmpty else { return }
        let minimumWeight = shares.map(\.share).min() ?? 1
        let scale = min((minimumWeight * Double(settings.minimumRingSize)).rounded(.up) / minimumWeight,
                        Double(settings.maximumRingSize))
        var entries: [(hash: UInt64, host: UpstreamHost)] = []
        entries.reserveCapacity(Int(scale.rounded(.up)))
        // Running sums keep fractional shares stable across hosts (Envoy's construction).
        var current = 0.0
        var target = 0.0
        for entry in shares {
            target += scale * entry.share
            var replica = 0
            let prefix = entry.host.address.description + "_"
            while current < target {
                entries.append((XXHash64.hash(prefix + String(replica)), entry.host))
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
