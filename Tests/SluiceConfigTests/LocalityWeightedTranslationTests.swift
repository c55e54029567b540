import SluiceConfig
import SluiceModel
import Testing

@Suite struct LocalityWeightedTranslationTests {
    /// A cluster whose load assignment lists `localities` (YAML flow items) and whose remaining
    /// fields are `body`.
    private func load(_ localities: [String], _ body: String = "") throws -> ClusterConfig {
        let loaded = try BootstrapLoader.load(text: """
            static_resources:
              clusters:
              - name: web
                connect_timeout: 1s
                \(body)
                load_assignment:
                  cluster_name: web
                  endpoints: [\(localities.joined(separator: ", "))]
            """)
        return try #require(loaded.configuration.clusters.first)
    }

    private func issues(_ localities: [String], _ body: String) -> [ConfigIssue] {
        do {
            _ = try load(localities, body)
            return []
        } catch let error as ConfigIssues {
            return error.issues
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    private func locality(_ zone: String?, weight: UInt64?, priority: Int = 0) -> String {
        var fields = ["priority: \(priority)"]
        if let zone { fields.append("locality: { zone: \(zone) }") }
        if let weight { fields.append("load_balancing_weight: \(weight)") }
        fields.append("lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } } }]")
        return "{ " + fields.joined(separator: ", ") + " }"
    }

    @Test func localityWeightedConfigIsAccepted() throws {
        let config = try load([locality("a", weight: 1), locality("b", weight: 3)],
                              "common_lb_config: { locality_weighted_lb_config: {} }")
        #expect(config.localityWeighted)
        #expect(config.loadAssignment.localities.map(\.weight) == [1, 3])
        #expect(try !load([locality("a", weight: 1)]).localityWeighted)
        let ringHash = try load([locality("a", weight: 1)], "lb_policy: RING_HASH\n    common_lb_config: { locality_weighted_lb_config: {} }")
        #expect(ringHash.localityWeighted && ringHash.loadBalancing == .ringHash(RingHashSettings()))
    }

    @Test func aWeightWithoutALocalityIsIgnoredAsInEnvoy() throws {
        let config = try load([locality(nil, weight: 5), locality("b", weight: 2)],
                              "common_lb_config: { locality_weighted_lb_config: {} }")
        #expect(config.loadAssignment.localities.map(\.weight) == [nil, 2])
    }

    @Test func zeroLocalityWeightIsRejectedByPath() {
        let found = issues([locality("a", weight: 1), locality("b", weight: 0)],
                           "common_lb_config: { locality_weighted_lb_config: {} }")
        #expect(found.map(\.path) == ["static_resources.clusters[0].load_assignment.endpoints[1].load_balancing_weight"])
        #expect(found.first?.kind == .invalid)
    }

    @Test func localityWeightSumMustFitInThirtyTwoBits() {
        let found = issues([locality("a", weight: 4_000_000_000), locality("b", weight: 400_000_000)],
                           "common_lb_config: { locality_weighted_lb_config: {} }")
        #expect(found.map(\.path) == ["static_resources.clusters[0].load_assignment.endpoints"])
        #expect(found.first?.message.contains("priority 0") == true)
        // Other priorities have their own sum; without locality weighting there is no limit.
        #expect(issues([locality("a", weight: 4_000_000_000), locality("b", weight: 400_000_000, priority: 1)],
                       "common_lb_config: { locality_weighted_lb_config: {} }").isEmpty)
        #expect(issues([locality("a", weight: 4_000_000_000), locality("b", weight: 400_000_000)], "").isEmpty)
    }

    @Test func zoneAwareRoutingStaysUnsupported() {
        let found = issues([locality("a", weight: 1)], "common_lb_config: { zone_aware_lb_config: { min_cluster_size: 3 } }")
        #expect(found.map(\.path) == ["static_resources.clusters[0].common_lb_config.zone_aware_lb_config"])
        #expect(found.first?.kind == .unsupported)
    }
}
