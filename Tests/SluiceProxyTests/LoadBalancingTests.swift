import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct LoadBalancingTests {
    private func host(_ last: Int, weight: UInt32 = 1, health: HealthStatus = .healthy, priority: Int = 0) -> UpstreamHost {
        UpstreamHost(address: SocketEndpoint("10.0.0.\(last):80")!, weight: weight, health: health, priority: priority)
    }

    @Test func priorityLoadFollowsEnvoy() {
        // All healthy: everything to P0.
        #expect(HostSet.distributeLoad(health: [100, 100]) == [100, 0])
        // P0 half healthy (70% with the 1.4 factor): 70/30.
        #expect(HostSet.distributeLoad(health: [70, 100]) == [70, 30])
        // Nothing healthy: all to P0 (panic).
        #expect(HostSet.distributeLoad(health: [0, 0]) == [100, 0])
        // Total health below 100 is normalized.
        #expect(HostSet.distributeLoad(health: [20, 20]) == [50, 50])
    }

    @Test func unhealthyPriorityZeroSpillsToPriorityOne() {
        let set = HostSet(hosts: [host(1, health: .unhealthy), host(2, health: .unhealthy), host(3, priority: 1)])
        #expect(set.priorityLoad == [0, 100])
        let balancer = LoadBalancer(policy: .roundRobin)
        for _ in 0..<20 { #expect(balancer.choose(from: set, excluding: [])?.priority == 1) }
    }

    @Test func panicModeUsesAllHosts() {
        let set = HostSet(hosts: [host(1, health: .unhealthy), host(2, health: .unhealthy), host(3, health: .unhealthy), host(4)])
        #expect(set.levels[0].inPanic)
        let balancer = LoadBalancer(policy: .roundRobin)
        let picked = Set((0..<40).compactMap { _ in balancer.choose(from: set)?.address.description })
        #expect(picked.count == 4)
    }

    @Test func weightedRoundRobinFollowsWeights() {
        let set = HostSet(hosts: [host(1, weight: 3), host(2, weight: 1)])
        let balancer = LoadBalancer(policy: .roundRobin)
        var counts: [String: Int] = [:]
        for _ in 0..<400 { counts[balancer.choose(from: set)!.address.description, default: 0] += 1 }
        #expect(counts["10.0.0.1:80"] == 300)
        #expect(counts["10.0.0.2:80"] == 100)
    }

    @Test func randomIgnoresHostWeights() {
        // Envoy's RANDOM picks uniformly among the hosts, whatever their weights.
        let set = HostSet(hosts: [host(1, weight: 9), host(2, weight: 1)])
        let balancer = LoadBalancer(policy: .random, seed: 3)
        var heavy = 0
        for _ in 0..<2000 where balancer.choose(from: set)!.address.description == "10.0.0.1:80" { heavy += 1 }
        #expect(heavy > 900 && heavy < 1100)
    }

    @Test func panicWaitsUntilTheLevelsTogetherFallShort() {
        // P0 has one healthy host of three (below the 50% threshold) but P1 can take the rest:
        // Envoy keeps P0 out of panic, so its share goes to its healthy host only.
        let set = HostSet(hosts: [host(1), host(2, health: .unhealthy), host(3, health: .unhealthy), host(4, priority: 1)])
        #expect(set.priorityLoad == [46, 54])
        #expect(!set.levels[0].inPanic)
        let balancer = LoadBalancer(policy: .roundRobin)
        for _ in 0..<50 { #expect(balancer.choose(from: set)?.address.description != "10.0.0.2:80") }
    }

    @Test func leastRequestPrefersIdleHosts() {
        let busy = host(1)
        let idle = host(2)
        for _ in 0..<10 { busy.activeRequests.increment() }
        let set = HostSet(hosts: [busy, idle])
        let balancer = LoadBalancer(policy: .leastRequest(choiceCount: 2))
        var idlePicks = 0
        for _ in 0..<200 where balancer.choose(from: set) === idle { idlePicks += 1 }
        // Power of two choices: the idle host wins unless both picks land on the busy one (~25%).
        #expect(idlePicks > 120)
    }

    @Test func retriesAvoidFailedHosts() {
        let first = host(1)
        let second = host(2)
        let set = HostSet(hosts: [first, second])
        let balancer = LoadBalancer(policy: .roundRobin)
        for _ in 0..<10 {
            #expect(balancer.choose(from: set, excluding: [ObjectIdentifier(first)]) === second)
        }
    }
}

@Suite struct WeightedLeastRequestTests {
    private func host(_ last: Int, weight: UInt32 = 1) -> UpstreamHost {
        UpstreamHost(address: SocketEndpoint("10.0.2.\(last):80")!, weight: weight, health: .healthy)
    }

    @Test func unequalWeightsDivideByActiveRequests() {
        // Weight 4 with 3 active requests scores 1, weight 1 idle scores 1: an even split.
        let heavy = host(1, weight: 4)
        let light = host(2, weight: 1)
        for _ in 0..<3 { heavy.activeRequests.increment() }
        let set = HostSet(hosts: [heavy, light])
        let balancer = LoadBalancer(policy: .leastRequest(choiceCount: 2), seed: 7)
        var heavyPicks = 0
        for _ in 0..<4000 where balancer.choose(from: set) === heavy { heavyPicks += 1 }
        #expect(heavyPicks == 2000)
        // With bias 0 the active count is ignored: 4 to 1.
        let unbiased = LoadBalancer(policy: .leastRequest(choiceCount: 2), activeRequestBias: 0, seed: 7)
        heavyPicks = 0
        for _ in 0..<4000 where unbiased.choose(from: set) === heavy { heavyPicks += 1 }
        #expect(heavyPicks == 3200)
    }

    @Test func unequalWeightsFollowAnEarliestDeadlineSchedule() {
        // Idle hosts of weights 3 and 1: whole rounds split exactly 3:1, as Envoy's EDF does.
        let set = HostSet(hosts: [host(1, weight: 3), host(2, weight: 1)])
        let balancer = LoadBalancer(policy: .leastRequest(choiceCount: 2), seed: 5)
        var heavyPicks = 0
        for _ in 0..<400 where balancer.choose(from: set) === set.allHosts[0] { heavyPicks += 1 }
        #expect(heavyPicks == 300)
    }

    @Test func aHostIsReweighedByItsActiveRequestsWhenPicked() {
        // Each pick holds its request open. A picked host goes back into the schedule with
        // weight / (active + 1)^bias as it is then, so with bias 1 the heavy host (weight 2) soon
        // yields turns it would keep with bias 0 (a plain 2:1 rotation).
        func heavyPicks(bias: Double) -> Int {
            let heavy = host(1, weight: 2)
            let set = HostSet(hosts: [heavy, host(2, weight: 1)])
            let balancer = LoadBalancer(policy: .leastRequest(choiceCount: 2), activeRequestBias: bias, seed: 8)
            var picks = 0
            for _ in 0..<30 {
                let chosen = balancer.choose(from: set)!
                chosen.activeRequests.increment()
                if chosen === heavy { picks += 1 }
            }
            return picks
        }
        #expect(heavyPicks(bias: 0) == 20)
        #expect(heavyPicks(bias: 1) < 20)
    }

    @Test func ejectedAndHealthCheckFailedHostsAreSkipped() {
        let hosts = (1...3).map { host($0) }
        hosts[0].setFlag(UpstreamHost.HealthFlag.failedOutlierCheck, true)
        hosts[1].setFlag(UpstreamHost.HealthFlag.failedActiveHealthCheck, true)
        // One healthy host of three is below the 50% panic threshold: panic uses them all.
        #expect(HostSet(hosts: hosts).levels[0].inPanic)
        let calm = HostSet(hosts: hosts, panicThresholdPercent: 30)
        #expect(!calm.levels[0].inPanic)
        let balancer = LoadBalancer(policy: .roundRobin)
        for _ in 0..<10 { #expect(balancer.choose(from: calm) === hosts[2]) }
    }
}
