import NIOConcurrencyHelpers
import SluiceModel

/// Chooses an upstream host from a host set. Implementations keep their own state (round-robin
/// position) under a lock, since connections arrive on every event loop.
final class LoadBalancer: Sendable {
    private struct State {
        var random = FastRandom()
        var roundRobinNext = 0
        /// Smooth weighted round-robin credit per host, keyed by host identity.
        var credit: [ObjectIdentifier: Int64] = [:]
    }

    private let policy: LoadBalancingPolicy
    private let state = NIOLockedValueBox(State())

    init(policy: LoadBalancingPolicy) {
        self.policy = policy
    }

    func choose(from hostSet: HostSet, excluding excluded: Set<ObjectIdentifier> = []) -> UpstreamHost? {
        state.withLockedValue { state in
            guard let level = hostSet.level(forPercent: state.random.next(below: 100)) else { return nil }
            var candidates = level.inPanic ? level.hosts : level.healthyHosts
            if !excluded.isEmpty, candidates.count > 1 {
                let remaining = candidates.filter { !excluded.contains(ObjectIdentifier($0)) }
                if !remaining.isEmpty { candidates = remaining }
            }
            guard !candidates.isEmpty else { return nil }
            if candidates.count == 1 { return candidates[0] }
            switch policy {
            case .roundRobin, .clusterProvided:
                return Self.roundRobin(candidates, state: &state)
            case .random:
                return Self.weightedRandom(candidates, weight: { Double($0.weight) }, random: &state.random)
            case .leastRequest(let choiceCount):
                return Self.leastRequest(candidates, choiceCount: choiceCount, random: &state.random)
            }
        }
    }

    private static func roundRobin(_ hosts: [UpstreamHost], state: inout State) -> UpstreamHost {
        let uniform = hosts.allSatisfy { $0.weight == hosts[0].weight }
        if uniform {
            state.roundRobinNext &+= 1
            return hosts[state.roundRobinNext % hosts.count]
        }
        // Smooth weighted round robin: every pick adds each host's weight to its credit and
        // charges the winner the total, which interleaves hosts in proportion to weight.
        var total: Int64 = 0
        var best = hosts[0]
        var bestCredit = Int64.min
        for host in hosts {
            let key = ObjectIdentifier(host)
            let credit = state.credit[key, default: 0] + Int64(host.weight)
            state.credit[key] = credit
            total += Int64(host.weight)
            if credit > bestCredit {
                bestCredit = credit
                best = host
            }
        }
        state.credit[ObjectIdentifier(best)]! -= total
        if state.credit.count > hosts.count * 4 {
            let live = Set(hosts.map(ObjectIdentifier.init))
            state.credit = state.credit.filter { live.contains($0.key) }
        }
        return best
    }

    private static func weightedRandom(
        _ hosts: [UpstreamHost], weight: (UpstreamHost) -> Double, random: inout FastRandom
    ) -> UpstreamHost {
        let weights = hosts.map(weight)
        let total = weights.reduce(0, +)
        var point = random.nextUnit() * total
        for (index, host) in hosts.enumerated() {
            point -= weights[index]
            if point < 0 { return host }
        }
        return hosts[hosts.count - 1]
    }

    /// Envoy's least-request: with equal weights, the fewest active connections among
    /// `choiceCount` random hosts; with unequal weights, weight divided by (active + 1).
    private static func leastRequest(_ hosts: [UpstreamHost], choiceCount: Int, random: inout FastRandom) -> UpstreamHost {
        let uniform = hosts.allSatisfy { $0.weight == hosts[0].weight }
        guard uniform else {
            return weightedRandom(hosts, weight: { Double($0.weight) / Double($0.connectionsActive.value + 1) }, random: &random)
        }
        var best = hosts[random.next(below: hosts.count)]
        for _ in 1..<max(choiceCount, 2) {
            let candidate = hosts[random.next(below: hosts.count)]
            if candidate.connectionsActive.value < best.connectionsActive.value { best = candidate }
        }
        return best
    }
}

/// xorshift64*: cheap and good enough for spreading load (no syscall per pick).
struct FastRandom {
    private var state: UInt64

    init(seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }

    mutating func nextUnit() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
