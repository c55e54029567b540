import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct ConsistentHashTests {
    private func host(_ last: Int, weight: UInt32 = 1, health: HealthStatus = .healthy, priority: Int = 0) -> UpstreamHost {
        UpstreamHost(address: SocketEndpoint("10.0.0.\(last):80")!, weight: weight, health: health, priority: priority)
    }

    @Test func xxHash64MatchesReferenceVectors() {
        // Values from the reference implementation (python-xxhash).
        #expect(XXHash64.hash("") == 0xef46_db37_51d8_e999)
        #expect(XXHash64.hash("abc") == 0x44bc_2cf5_ad77_0999)
        #expect(XXHash64.hash("10.0.0.1:80_0") == 0x7504_1381_e737_1a08)
        #expect(XXHash64.hash("The quick brown fox jumps over the lazy dog, twice over") == 0x814e_213a_6320_b854)
        #expect(XXHash64.hash("10.0.0.1:80", seed: 1) == 0xa456_919b_cbff_aa92)
    }

    @Test func ringSizeFollowsEnvoyScaling() {
        let hosts = [host(1), host(2), host(3)]
        // Equal weights: ceil(1/3 * 1024) / (1/3) = 342 * 3 = 1026 entries.
        #expect(HashRing(hosts: hosts, settings: RingHashSettings()).hashes.count == 1026)
        // Capped by the maximum.
        #expect(HashRing(hosts: hosts, settings: RingHashSettings(minimumRingSize: 1024, maximumRingSize: 300)).hashes.count == 300)
        // Weights 1 and 3: the light host gets ceil(0.25 * 8) = 2 entries, the heavy one 6.
        let weighted = HashRing(hosts: [host(1), host(2, weight: 3)], settings: RingHashSettings(minimumRingSize: 8, maximumRingSize: 100))
        #expect(weighted.hosts.filter { $0.address.description == "10.0.0.1:80" }.count == 2)
        #expect(weighted.hosts.filter { $0.address.description == "10.0.0.2:80" }.count == 6)
        #expect(weighted.hashes == weighted.hashes.sorted())
    }

    @Test func ringLookupTakesTheNextEntryAndWraps() {
        let ring = HashRing(hosts: [host(1), host(2)], settings: RingHashSettings(minimumRingSize: 4, maximumRingSize: 4))
        #expect(ring.hashes.count == 4)
        for (index, hash) in ring.hashes.enumerated() {
            #expect(ring.host(for: hash) === ring.hosts[index])
            if hash > 0 { #expect(ring.host(for: hash - 1) === ring.hosts[index]) }
        }
        #expect(ring.host(for: ring.hashes.last! + 1) === ring.hosts[0])
        #expect(ring.host(for: ring.hashes[0], attempt: 1) === ring.hosts[1])
    }

    @Test func ringHashIsStableAndRemapsLittle() {
        let hosts = (1...5).map { host($0) }
        let balancer = LoadBalancer(policy: .ringHash(RingHashSettings()))
        let before = HostSet(hosts: hosts)
        var first: [UInt64: String] = [:]
        for key in 0..<2000 {
            let hash = XXHash64.hash("request-\(key)")
            let chosen = balancer.choose(from: before, context: LoadBalancerContext(hashKey: hash))!
            #expect(balancer.choose(from: before, context: LoadBalancerContext(hashKey: hash)) === chosen)
            first[hash] = chosen.address.description
        }
        // Removing a host moves every key it owned. The ring keeps its size, so each survivor
        // gains entries (205 → 256 each, as in Envoy) and takes over some keys from the others:
        // far fewer than a modulo hash would move (about 80%).
        let after = HostSet(hosts: Array(hosts.dropLast()))
        var movedFromSurvivors = 0
        var survivorKeys = 0
        for (hash, address) in first {
            let now = balancer.choose(from: after, context: LoadBalancerContext(hashKey: hash))!.address.description
            if address == "10.0.0.5:80" {
                #expect(now != address)
            } else {
                survivorKeys += 1
                if now != address { movedFromSurvivors += 1 }
            }
        }
        #expect(survivorKeys > 1300 && survivorKeys < 1800)
        #expect(Double(movedFromSurvivors) / Double(survivorKeys) < 0.3)
    }

    @Test func ringHashAvoidsPreviousHosts() {
        let hosts = (1...3).map { host($0) }
        let set = HostSet(hosts: hosts)
        let balancer = LoadBalancer(policy: .ringHash(RingHashSettings()))
        var differed = 0
        for key in 0..<200 {
            let hash = XXHash64.hash("k\(key)")
            let first = balancer.choose(from: set, context: LoadBalancerContext(hashKey: hash))!
            var context = LoadBalancerContext(hashKey: hash, hostSelectionRetryMaxAttempts: 5)
            context.avoid(first)
            if balancer.choose(from: set, context: context) !== first { differed += 1 }
        }
        // A run of entries of the same host longer than the attempts is possible but rare.
        #expect(differed >= 195)
    }

    @Test func maglevTableIsFullAndBalanced() {
        let hosts = (1...4).map { host($0) }
        let table = MaglevTable(hosts: hosts, tableSize: 65537)
        #expect(table.table.count == 65537)
        var counts: [String: Int] = [:]
        for entry in table.table { counts[entry.address.description, default: 0] += 1 }
        #expect(counts.count == 4)
        // Maglev's guarantee: entries per host differ by at most about one per round.
        for count in counts.values { #expect(abs(count - 65537 / 4) <= 4) }
    }

    @Test func maglevTableIgnoresDiscoveryOrder() {
        let hosts = (1...5).map { host($0) }
        let forward = MaglevTable(hosts: hosts, tableSize: 251)
        let reversed = MaglevTable(hosts: hosts.reversed(), tableSize: 251)
        #expect(forward.table.map(\.address) == reversed.table.map(\.address))
    }

    @Test func maglevFollowsWeights() {
        let table = MaglevTable(hosts: [host(1, weight: 1), host(2, weight: 3)], tableSize: 65537)
        let light = table.table.filter { $0.address.description == "10.0.0.1:80" }.count
        #expect(abs(Double(light) / 65537 - 0.25) < 0.01)
    }

    @Test func maglevRemapsLittleWhenAHostLeaves() {
        let hosts = (1...5).map { host($0) }
        let before = MaglevTable(hosts: hosts, tableSize: 65537)
        let after = MaglevTable(hosts: Array(hosts.dropLast()), tableSize: 65537)
        var moved = 0
        for index in 0..<65537 where before.table[index].address != after.table[index].address {
            if before.table[index].address.description != "10.0.0.5:80" { moved += 1 }
        }
        // Entries of surviving hosts mostly stay put (Maglev promises minimal disruption, not zero).
        #expect(Double(moved) / 65537 < 0.05)
    }

    @Test func maglevIsStableForAKeyAndHonoursPriorities() {
        let set = HostSet(hosts: [host(1, health: .unhealthy), host(2, health: .unhealthy), host(3, priority: 1), host(4, priority: 1)])
        let balancer = LoadBalancer(policy: .maglev(tableSize: 251))
        for key in 0..<100 {
            let hash = XXHash64.hash("key\(key)")
            let chosen = balancer.choose(from: set, context: LoadBalancerContext(hashKey: hash))
            #expect(chosen?.priority == 1)
            #expect(balancer.choose(from: set, context: LoadBalancerContext(hashKey: hash)) === chosen)
        }
    }

    @Test func noHashPicksAtRandom() {
        let set = HostSet(hosts: (1...4).map { host($0) })
        let balancer = LoadBalancer(policy: .ringHash(RingHashSettings()), seed: 42)
        let picked = Set((0..<200).compactMap { _ in balancer.choose(from: set, context: LoadBalancerContext())?.address.description })
        #expect(picked.count == 4)
    }
}
