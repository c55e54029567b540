import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct LocalityWeightedBalancingTests {
    private func host(
        _ last: Int, zone: String, localityWeight: UInt32?, health: HealthStatus = .healthy, priority: Int = 0,
        weight: UInt32 = 1
    ) -> UpstreamHost {
        UpstreamHost(
            address: SocketEndpoint("10.0.3.\(last):80")!, weight: weight, health: health,
            locality: Locality(zone: zone), localityWeight: localityWeight, priority: priority)
    }

    private func counts(_ balancer: LoadBalancer, _ set: HostSet, picks: Int) -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for _ in 0..<picks {
            guard let host = balancer.choose(from: set) else { continue }
            counts[Int(host.address.description.split(separator: ".")[3].split(separator: ":")[0])!, default: 0] += 1
        }
        return counts
    }

    @Test func schedulerInterleavesByWeight() {
        var scheduler = EDFScheduler(weights: [1, 2, 3, 0])
        let weights: [Double] = [1, 2, 3, 0]
        let order = (0..<12).map { _ in scheduler.pick { weights[$0] }! }
        // The heaviest is due first; each round of six picks holds every entry as often as its
        // weight; weight 0 never comes up.
        #expect(order.first == 2)
        for round in [order[0..<6], order[6..<12]] {
            #expect(Dictionary(grouping: round, by: { $0 }).mapValues(\.count) == [0: 1, 1: 2, 2: 3])
        }
        #expect(EDFScheduler(weights: [0, 0]).isEmpty)
    }

    @Test func localitiesShareTrafficByWeight() {
        let set = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 1), host(2, zone: "b", localityWeight: 2), host(3, zone: "c", localityWeight: 3),
        ])
        #expect(set.levels[0].localities.map(\.effectiveWeight) == [1, 2, 3])
        // The locality schedule is deterministic: whole rounds split exactly 1:2:3.
        let balancer = LoadBalancer(policy: .roundRobin, localityWeighted: true, seed: 11)
        #expect(counts(balancer, set, picks: 600) == [1: 100, 2: 200, 3: 300])
        // Without locality weighting the hosts share equally.
        #expect(counts(LoadBalancer(policy: .roundRobin), set, picks: 600) == [1: 200, 2: 200, 3: 200])
    }

    @Test func hostsWithinALocalityFollowThePolicy() {
        let set = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 1), host(2, zone: "b", localityWeight: 1), host(3, zone: "b", localityWeight: 1),
        ])
        // Each locality has its own round-robin position: b's two hosts alternate within b's half.
        let balancer = LoadBalancer(policy: .roundRobin, localityWeighted: true, seed: 3)
        #expect(counts(balancer, set, picks: 400) == [1: 200, 2: 100, 3: 100])
    }

    @Test func unhealthyHostsScaleTheirLocalityDown() {
        // b keeps one healthy host of two: availability min(1, 1.4 × 1/2) = 0.7 of its weight.
        let set = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 1),
            host(2, zone: "b", localityWeight: 1), host(3, zone: "b", localityWeight: 1, health: .unhealthy),
        ])
        #expect(!set.levels[0].inPanic)
        #expect(set.levels[0].localities.map(\.effectiveWeight) == [1, 0.7])
        let balancer = LoadBalancer(policy: .roundRobin, localityWeighted: true, seed: 5)
        let result = counts(balancer, set, picks: 1700)
        #expect(abs(result[1, default: 0] - 1000) <= 1 && abs(result[2, default: 0] - 700) <= 1)
        #expect(result[3] == nil, "an unhealthy host takes no traffic outside panic")
        // The overprovisioning factor lifts availability back to 1 once enough hosts are healthy.
        let generous = HostSet(hosts: set.allHosts, overprovisioningFactor: 2)
        #expect(generous.levels[0].localities.map(\.effectiveWeight) == [1, 1])
    }

    @Test func localitiesWithoutWeightTakeNoTraffic() {
        let set = HostSet(hosts: [host(1, zone: "a", localityWeight: 2), host(2, zone: "b", localityWeight: nil)])
        let balancer = LoadBalancer(policy: .leastRequest(choiceCount: 2), localityWeighted: true, seed: 1)
        #expect(counts(balancer, set, picks: 50) == [1: 50])
        // No locality has a weight: Envoy balances over the level's healthy hosts instead.
        let unweighted = HostSet(hosts: [host(1, zone: "a", localityWeight: nil), host(2, zone: "b", localityWeight: nil)])
        #expect(counts(LoadBalancer(policy: .roundRobin, localityWeighted: true), unweighted, picks: 50) == [1: 25, 2: 25])
        // A weighted locality whose hosts are all unhealthy has no effective weight either.
        let downInA = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 5, health: .unhealthy),
            host(2, zone: "b", localityWeight: 1), host(3, zone: "b", localityWeight: 1), host(4, zone: "b", localityWeight: 1),
        ])
        #expect(counts(LoadBalancer(policy: .random, localityWeighted: true), downInA, picks: 300)[1] == nil)
    }

    @Test func panicIgnoresLocalityWeights() {
        // One healthy host of four is below the 50% threshold: every host of the level takes an
        // equal share, whatever its locality's weight or health.
        let set = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 100),
            host(2, zone: "b", localityWeight: 1, health: .unhealthy), host(3, zone: "b", localityWeight: 1, health: .unhealthy),
            host(4, zone: "b", localityWeight: 1, health: .unhealthy),
        ])
        #expect(set.levels[0].inPanic)
        let balancer = LoadBalancer(policy: .roundRobin, localityWeighted: true, seed: 2)
        #expect(counts(balancer, set, picks: 400) == [1: 100, 2: 100, 3: 100, 4: 100])
    }

    @Test func prioritySpillOverKeepsLocalityWeightsPerLevel() {
        // P0 has one healthy host of four (health 35%), P1 is whole: 35/65. P0 is not in panic
        // because the levels together can take all traffic (Envoy), so P0's share goes to its
        // one healthy host; P1 splits its share 1:3 by locality weight.
        let set = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 1), host(2, zone: "a", localityWeight: 1, health: .unhealthy),
            host(3, zone: "b", localityWeight: 3, health: .unhealthy), host(4, zone: "b", localityWeight: 3, health: .unhealthy),
            host(5, zone: "c", localityWeight: 1, priority: 1), host(6, zone: "d", localityWeight: 3, priority: 1),
        ])
        #expect(set.priorityLoad == [35, 65])
        #expect(!set.levels[0].inPanic)
        let balancer = LoadBalancer(policy: .roundRobin, localityWeighted: true, seed: 9)
        let result = counts(balancer, set, picks: 8000)
        #expect(Set(result.keys) == [1, 5, 6])
        #expect(abs(result[1, default: 0] - 2800) < 250)
        let p1 = Double(result[5, default: 0] + result[6, default: 0])
        #expect(abs(Double(result[6, default: 0]) / p1 - 0.75) < 0.01)
    }

    @Test func everyLevelInPanicSplitsLoadByHostCount() {
        let set = HostSet(hosts: [
            host(1, zone: "a", localityWeight: 1, health: .unhealthy), host(2, zone: "a", localityWeight: 1, health: .unhealthy),
            host(3, zone: "a", localityWeight: 1, health: .unhealthy), host(4, zone: "a", localityWeight: 1, health: .unhealthy, priority: 1),
        ])
        #expect(set.levels.allSatisfy { $0.inPanic })
        #expect(set.priorityLoad == [75, 25])
        // A zero threshold never panics; with nothing healthy all load stays on P0 (Envoy).
        let calm = HostSet(hosts: set.allHosts, panicThresholdPercent: 0)
        #expect(!calm.levels.contains { $0.inPanic } && calm.priorityLoad == [100, 0])
        #expect(LoadBalancer(policy: .roundRobin, localityWeighted: true).choose(from: calm) == nil)
    }

    @Test func hashBalancersGiveLocalitiesTheirWeightShare() {
        // Envoy's RING_HASH and MAGLEV honour locality weights (not availability): a 1:3 split
        // between one host each, and hosts of zero-weight localities never appear.
        let hosts = [host(1, zone: "a", localityWeight: 1), host(2, zone: "b", localityWeight: 3), host(3, zone: "c", localityWeight: nil)]
        let set = HostSet(hosts: hosts)
        for policy in [LoadBalancingPolicy.ringHash(RingHashSettings()), .maglev(tableSize: 65537)] {
            let balancer = LoadBalancer(policy: policy, localityWeighted: true, seed: 4)
            var result: [String: Int] = [:]
            for key in 0..<4000 {
                let hash = XXHash64.hash("key-\(key)")
                result[balancer.choose(from: set, context: LoadBalancerContext(hashKey: hash))!.address.description, default: 0] += 1
            }
            #expect(result["10.0.3.3:80"] == nil)
            #expect(abs(Double(result["10.0.3.2:80", default: 0]) / 4000 - 0.75) < 0.04)
            // Without locality weighting the three hosts share equally.
            let flat = LoadBalancer(policy: policy)
            #expect(flat.choose(from: set, context: LoadBalancerContext(hashKey: 1)) != nil)
        }
        // No locality weight at all leaves nothing to hash to, as in Envoy.
        let none = HostSet(hosts: [host(1, zone: "a", localityWeight: nil)])
        #expect(LoadBalancer(policy: .maglev(tableSize: 251), localityWeighted: true).choose(from: none) == nil)
    }
}
