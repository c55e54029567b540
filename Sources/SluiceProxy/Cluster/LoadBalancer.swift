import Foundation
import NIOConcurrencyHelpers
import SluiceModel

/// Chooses an upstream host from a host set as Envoy's load balancers do: a priority level by
/// its share of load, then (with locality weighting) a locality by effective weight, then a host
/// with the cluster's policy. Schedules and hash tables are kept under a lock, built for the
/// current host set, since requests arrive on every event loop.
final class LoadBalancer: Sendable {
    /// The hosts of a level a pick draws from (Envoy's hosts source); each has its own schedule.
    private struct HostSource: Hashable {
        enum Kind: Hashable {
            case all, healthy
            case locality(Int)
        }

        var level: Int
        var kind: Kind
    }

    private struct State {
        var random = FastRandom()
        /// The host set the schedules and tables below belong to; a new set starts them afresh.
        var builtFor: HostSet?
        /// Weighted round-robin and weighted least-request schedules, built on first use.
        var hostSchedules: [HostSource: EDFScheduler] = [:]
        /// Locality schedules per level, built on first use; empty when no locality has weight.
        var localitySchedules: [Int: EDFScheduler] = [:]
        /// Round-robin positions survive host set changes, as Envoy's do.
        var roundRobinNext: [HostSource: Int] = [:]
        var rings: [HashRing] = []
        var maglevTables: [MaglevTable] = []
    }

    private let policy: LoadBalancingPolicy
    private let activeRequestBias: Double
    private let localityWeighted: Bool
    private let state: NIOLockedValueBox<State>

    init(policy: LoadBalancingPolicy, activeRequestBias: Double = 1.0, localityWeighted: Bool = false, seed: UInt64? = nil) {
        self.policy = policy
        self.activeRequestBias = activeRequestBias
        self.localityWeighted = localityWeighted
        self.state = NIOLockedValueBox(State(random: seed.map { FastRandom(seed: $0) } ?? FastRandom()))
    }

    func choose(from hostSet: HostSet, excluding excluded: Set<ObjectIdentifier> = []) -> UpstreamHost? {
        choose(from: hostSet, context: LoadBalancerContext(hostsToAvoid: excluded))
    }

    func choose(from hostSet: HostSet, context: LoadBalancerContext) -> UpstreamHost? {
        state.withLockedValue { state in
            if state.builtFor !== hostSet {
                state.builtFor = hostSet
                state.hostSchedules = [:]
                state.localitySchedules = [:]
                state.rings = []
                state.maglevTables = []
            }
            switch policy {
            case .ringHash, .maglev:
                return chooseByHash(hostSet, context: context, state: &state)
            default:
                break
            }
            // One draw picks the level and, for RANDOM, the host (as in Envoy).
            let draw = state.random.next()
            guard let levelIndex = hostSet.levelIndex(forPercent: Int(draw % 100)) else { return nil }
            let level = hostSet.levels[levelIndex]
            let source: HostSource
            let candidates: [UpstreamHost]
            if level.inPanic {
                (source, candidates) = (HostSource(level: levelIndex, kind: .all), level.hosts)
            } else if localityWeighted, let locality = chooseLocality(level, index: levelIndex, state: &state) {
                source = HostSource(level: levelIndex, kind: .locality(locality))
                candidates = level.localities[locality].healthyHosts
            } else {
                (source, candidates) = (HostSource(level: levelIndex, kind: .healthy), level.healthyHosts)
            }
            return chooseHost(candidates, source: source, avoiding: context.hostsToAvoid, draw: draw, state: &state)
        }
    }

    /// The locality of `level` next in its schedule by effective weight; nil when none has weight
    /// (Envoy then balances over the level's healthy hosts).
    private func chooseLocality(_ level: HostSet.Level, index: Int, state: inout State) -> Int? {
        let weights = level.localities.map(\.effectiveWeight)
        if state.localitySchedules[index] == nil {
            state.localitySchedules[index] = Self.schedule(weights, random: &state.random)
        }
        return state.localitySchedules[index]!.pick { weights[$0] }
    }

    private func chooseHost(
        _ candidates: [UpstreamHost], source: HostSource, avoiding: Set<ObjectIdentifier>, draw: UInt64, state: inout State
    ) -> UpstreamHost? {
        guard candidates.count > 1 else { return candidates.first }
        var remaining = candidates
        if !avoiding.isEmpty {
            remaining = candidates.filter { !avoiding.contains(ObjectIdentifier($0)) }
            // Every host is one to avoid: any of them will do.
            if remaining.isEmpty { remaining = candidates }
        }
        let uniform = candidates.allSatisfy { $0.weight == candidates[0].weight }
        switch policy {
        case .random:
            // Envoy's RANDOM ignores host weights.
            return remaining[Int(draw % UInt64(remaining.count))]
        case .leastRequest(let choiceCount) where uniform:
            return Self.leastRequest(remaining, choiceCount: choiceCount, random: &state.random)
        case .leastRequest:
            return scheduledHost(candidates, remaining: remaining, source: source, state: &state) { host in
                let active = Double(max(host.activeRequests.value, 0)) + 1
                let bias = self.activeRequestBias
                return Double(host.weight) / (bias == 1 ? active : pow(active, bias))
            }
        case .roundRobin, .clusterProvided, .ringHash, .maglev:
            guard uniform else {
                return scheduledHost(candidates, remaining: remaining, source: source, state: &state) { Double($0.weight) }
            }
            let next = state.roundRobinNext[source, default: 0] &+ 1
            state.roundRobinNext[source] = next
            return remaining[next % remaining.count]
        }
    }

    /// The next host of `source`'s EDF schedule by `weight`, skipping hosts to avoid (those not in
    /// `remaining`) for up to one round; the weight is re-read each time a host is picked.
    private func scheduledHost(
        _ candidates: [UpstreamHost], remaining: [UpstreamHost], source: HostSource, state: inout State,
        weight: (UpstreamHost) -> Double
    ) -> UpstreamHost {
        if state.hostSchedules[source] == nil {
            state.hostSchedules[source] = Self.schedule(candidates.map(weight), random: &state.random)
        }
        let avoiding = remaining.count < candidates.count
        for _ in candidates.indices {
            guard let index = state.hostSchedules[source]!.pick(weight: { weight(candidates[$0]) }) else { break }
            let host = candidates[index]
            if !avoiding || remaining.contains(where: { $0 === host }) { return host }
        }
        return remaining[0]
    }

    /// A schedule over `weights` started at a random point of its rotation, so balancers that see
    /// the same hosts at the same time do not move in lock step (Envoy's seeded pre-picks).
    private static func schedule(_ weights: [Double], random: inout FastRandom) -> EDFScheduler {
        var schedule = EDFScheduler(weights: weights)
        if !schedule.isEmpty {
            for _ in 0..<random.next(below: weights.count) { _ = schedule.pick { weights[$0] } }
        }
        return schedule
    }

    /// RING_HASH and MAGLEV: the request hash (random without one) picks the priority and the
    /// host; a host to avoid makes the pick repeat with a perturbed hash, as Envoy's
    /// host-selection retries do. With locality weighting the tables give each locality its
    /// weight's share (Envoy's normalized locality weights).
    private func chooseByHash(_ hostSet: HostSet, context: LoadBalancerContext, state: inout State) -> UpstreamHost? {
        if state.rings.isEmpty, state.maglevTables.isEmpty {
            for level in hostSet.levels {
                let shares = localityWeighted
                    ? HostShare.byLocalityWeight(level.localities, inPanic: level.inPanic)
                    : HostShare.byHostWeight(level.inPanic ? level.hosts : level.healthyHosts)
                switch policy {
                case .ringHash(let settings): state.rings.append(HashRing(shares: shares, settings: settings))
                case .maglev(let size): state.maglevTables.append(MaglevTable(shares: shares, tableSize: size))
                default: break
                }
            }
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

    /// Envoy's least-request with equal weights: the fewest active requests among `choiceCount`
    /// random hosts.
    private static func leastRequest(_ hosts: [UpstreamHost], choiceCount: Int, random: inout FastRandom) -> UpstreamHost {
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
}

extension FastRandom: RandomNumberGenerator {}
