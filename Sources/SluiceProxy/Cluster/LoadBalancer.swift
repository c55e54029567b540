import Foundation
import NIOConcurrencyHelpers
import SluiceModel

/// Chooses an upstream host from a host set. Implementations keep their own state (round-robin
/// position, hash tables built for the current host set) under a lock, since requests arrive
/// on every event loop.
final class LoadBalancer: Sendable {
    private struct State {
        var random = FastRandom()
        var roundRobinNext = 0
        /// Smooth weighted round-robin credit per host, keyed by host identity.
        var credit: [ObjectIdentifier: Int64] = [:]
        /// Hash tables per priority level, valid for `tablesFor` only.
        var tablesFor: HostSet?
        var rings: [HashRing] = []
        var maglevTables: [MaglevTable] = []
    }

    private let policy: LoadBalancingPolicy
    private let activeRequestBias: Double
    private let state: NIOLockedValueBox<State>

    init(policy: LoadBalancingPolicy, activeRequestBias: Double = 1.0, seed: UInt64? = nil) {
        self.policy = policy
        self.activeRequestBias = activeRequestBias
        self.state = NIOLockedValueBox(State(random: seed.map { FastRandom(seed: $0) } ?? FastRandom()))
    }

    func choose(from hostSet: HostSet, excluding excluded: Set<ObjectIdentifier> = []) -> UpstreamHost? {
        choose(from: hostSet, context: LoadBalancerContext(hostsToAvoid: excluded))
    }

    func choose(from hostSet: HostSet, context: LoadBalancerContext) -> UpstreamHost? {
        state.withLockedValue { state in
            switch policy {
            case .ringHash, .maglev:
                return Self.chooseByHash(hostSet, policy: policy, context: context, state: &state)
            default:
                break
            }
            guard let level = hostSet.level(forPercent: state.random.next(below: 100)) else { return nil }
            var candidates = level.inPanic ? level.hosts : level.healthyHosts
            if !context.hostsToAvoid.isEmpty, candidates.count > 1 {
                let remaining = candidates.filter { !context.hostsToAvoid.contains(ObjectIdentifier($0)) }
                if !remaining.isEmpty { candidates = remaining }
            }
            guard !candidates.isEmpty else { return nil }
            if candidates.count == 1 { return candidates[0] }
            switch policy {
            case .roundRobin, .clusterProvided, .ringHash, .maglev:
                return Self.roundRobin(candidates, state: &state)
            case .random:
                return Self.weightedRandom(candidates, weight: { Double($0.weight) }, random: &state.random)
            case .leastRequest(let choiceCount):
                return Self.leastRequest(candidates, choiceCount: choiceCount, bias: activeRequestBias, random: &state.random)
            }
        }
    }

    /// RING_HASH and MAGLEV: the request hash (random without one) picks the priority and the
    /// host; a host to avoid makes the pick repeat with a perturbed hash, as Envoy's
    /// host-selection retries do.
    private static func chooseByHash(
        _ hostSet: HostSet, policy: LoadBalancingPolicy, context: LoadBalancerContext, state: inout State
    ) -> UpstreamHost? {
        if state.tablesFor !== hostSet {
            state.rings = []
            state.maglevTables = []
            for level in hostSet.levels {
                let candidates = level.inPanic ? level.hosts : level.healthyHosts
                switch policy {
                case .ringHash(let settings): state.rings.append(HashRing(hosts: candidates, settings: settings))
                case .maglev(let size): state.maglevTables.append(MaglevTable(hosts: candidates, tableSize: size))
                default: break
                }
            }
            state.tablesFor = hostSet
        }
        let hash = context.hashKey ?? state.random.next()
        guard let levelIndex = hostSet.levelIndex(forPercent: Int(hash % 100)) else { return nil }
        var chosen: UpstreamHost?
        for attempt in 0...max(context.hostSelectionRetryMaxAttempts, 0) {
            switch policy {
            case .ringHash: chosen = state.rings[levelIndex].host(for: hash, attempt: attempt)
            case .maglev: chosen = state.maglevTables[levelIndex].host(for: hash, attempt: attempt)
            default: return nil
            }
            guard let host = chosen, context.hostsToAvoid.contains(ObjectIdentifier(host)) else { return chosen }
        }
        return chosen
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

    /// Envoy's least-request: with equal weights, the fewest active requests among
    /// `choiceCount` random hosts; with unequal weights, weight / (active + 1)^bias.
    private static func leastRequest(
        _ hosts: [UpstreamHost], choiceCount: Int, bias: Double, random: inout FastRandom
    ) -> UpstreamHost {
        let uniform = hosts.allSatisfy { $0.weight == hosts[0].weight }
        guard uniform else {
            return weightedRandom(hosts, weight: { host in
                let active = Double(max(host.activeRequests.value, 0)) + 1
                return Double(host.weight) / (bias == 1 ? active : pow(active, bias))
            }, random: &random)
        }
        var best = hosts[random.next(below: hosts.count)]
        for _ in 1..<max(choiceCount, 2) {
            let candidate = hosts[random.next(below: hosts.count)]
            if candidate.activeRequests.value < best.activeRequests.value { best = candidate }
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

extension FastRandom: RandomNumberGenerator {}
