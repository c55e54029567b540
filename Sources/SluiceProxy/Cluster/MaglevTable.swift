import SluiceModel

/// Envoy's MAGLEV lookup table: each host walks its own permutation of the table (offset and
/// skip from two xxHash64 seeds of its address) and claims the next free slot; heavier hosts
/// take a turn in more rounds, in proportion to weight over the largest weight.
struct MaglevTable {
    private(set) var table: [UpstreamHost] = []

    init(hosts: [UpstreamHost], tableSize: Int) {
        self.init(shares: HostShare.byHostWeight(hosts), tableSize: tableSize)
    }

    init(shares unordered: [HostShare], tableSize: Int) {
        guard !unordered.isEmpty, tableSize > 1 else { return }
        // Hosts fill the table in the order of their hash keys, as in Envoy, so the table does
        // not depend on the order discovery listed them in.
        let sorted = unordered.sorted { $0.host.address.description < $1.host.address.description }
        let candidates = sorted.map(\.host)
        let weights = sorted.map(\.share)
        let size = UInt64(tableSize)
        let maxWeight = weights.max() ?? 1
        var offsets: [UInt64] = []
        var skips: [UInt64] = []
        for host in candidates {
            let key = host.address.description
            offsets.append(XXHash64.hash(key, seed: 0) % size)
            skips.append(XXHash64.hash(key, seed: 1) % (size - 1) + 1)
        }
        var next = Array(repeating: UInt64(0), count: candidates.count)
        var targets = Array(repeating: 0.0, count: candidates.count)
        var slots = Array(repeating: -1, count: tableSize)
        var filled = 0
        var iteration = 1.0
        while filled < tableSize {
            for index in candidates.indices where filled < tableSize {
                // A host of the largest weight places one entry every round, lighter ones less often.
                if weights[index] * iteration < targets[index] { continue }
                targets[index] += maxWeight
                var slot = (offsets[index] &+ skips[index] &* next[index]) % size
                while slots[Int(slot)] >= 0 {
                    next[index] += 1
                    slot = (offsets[index] &+ skips[index] &* next[index]) % size
                }
                slots[Int(slot)] = index
                next[index] += 1
                filled += 1
            }
            iteration += 1
        }
        table = slots.map { candidates[$0] }
    }

    var isEmpty: Bool { table.isEmpty }

    /// The host for `hash`; `attempt` > 0 perturbs the hash so a retry can land elsewhere.
    func host(for hash: UInt64, attempt: Int = 0) -> UpstreamHost? {
        guard !table.isEmpty else { return nil }
        var value = hash
        if attempt > 0 { value ^= ~UInt64(0) &- UInt64(attempt) &+ 1 }
        return table[Int(value % UInt64(table.count))]
    }
}
