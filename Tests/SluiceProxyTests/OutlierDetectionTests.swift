import Foundation
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct OutlierDetectionTests {
    private let second: UInt64 = 1_000_000_000
    private let hostA = UpstreamHost(address: SocketEndpoint("10.0.0.1:80")!)
    private var a: ObjectIdentifier { ObjectIdentifier(hostA) }

    private func ejections(_ decisions: [OutlierDetectorState.Decision]) -> [OutlierEjectionReason] {
        decisions.compactMap { if case .ejected(_, let reason) = $0 { return reason } else { return nil } }
    }

    @Test func fiveConsecutive5xxEject() {
        var state = OutlierDetectorState(config: OutlierDetectionConfig(maxEjectionPercent: 100))
        for _ in 0..<4 { #expect(state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0, roll: { 0 }).isEmpty) }
        let decisions = state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0, roll: { 0 })
        #expect(ejections(decisions) == [.consecutive5xx])
        #expect(state.isEjected(a))
    }

    @Test func successResetsTheStreak() {
        var state = OutlierDetectorState(config: OutlierDetectionConfig(maxEjectionPercent: 100))
        for _ in 0..<4 { _ = state.record(.httpResponse(status: 503), host: a, hostCount: 2, now: 0) }
        _ = state.record(.httpResponse(status: 200), host: a, hostCount: 2, now: 0)
        for _ in 0..<4 { #expect(ejections(state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0)).isEmpty) }
        #expect(!state.isEjected(a))
    }

    @Test func gatewayFailuresAreDetectedButNotEnforcedByDefault() {
        var state = OutlierDetectorState(config: OutlierDetectionConfig(consecutive5xx: 10, consecutiveGatewayFailure: 3, maxEjectionPercent: 100))
        var decisions: [OutlierDetectorState.Decision] = []
        for _ in 0..<3 { decisions += state.record(.httpResponse(status: 502), host: a, hostCount: 2, now: 0, roll: { 0 }) }
        #expect(decisions == [.detected(host: a, reason: .consecutiveGatewayFailure, enforced: false, overflow: false)])
        #expect(!state.isEjected(a))

        var enforcing = OutlierDetectorState(config: OutlierDetectionConfig(
            consecutive5xx: 10, consecutiveGatewayFailure: 3, maxEjectionPercent: 100, enforcingConsecutiveGatewayFailure: 100))
        for _ in 0..<2 { _ = enforcing.record(.httpResponse(status: 504), host: a, hostCount: 2, now: 0, roll: { 0 }) }
        #expect(ejections(enforcing.record(.httpResponse(status: 503), host: a, hostCount: 2, now: 0, roll: { 0 })) == [.consecutiveGatewayFailure])
    }

    @Test func localOriginFailuresCountAsGatewayErrorsUnlessSplit() {
        var merged = OutlierDetectorState(config: OutlierDetectionConfig(maxEjectionPercent: 100))
        for _ in 0..<4 { _ = merged.record(.connectFailed, host: a, hostCount: 2, now: 0, roll: { 0 }) }
        #expect(ejections(merged.record(.timeout, host: a, hostCount: 2, now: 0, roll: { 0 })) == [.consecutive5xx])

        var split = OutlierDetectorState(config: OutlierDetectionConfig(
            consecutiveLocalOriginFailure: 3, splitExternalLocalOriginErrors: true, maxEjectionPercent: 100))
        _ = split.record(.connectFailed, host: a, hostCount: 2, now: 0, roll: { 0 })
        _ = split.record(.reset, host: a, hostCount: 2, now: 0, roll: { 0 })
        _ = split.record(.connectSucceeded, host: a, hostCount: 2, now: 0, roll: { 0 })  // resets the local streak
        _ = split.record(.connectFailed, host: a, hostCount: 2, now: 0, roll: { 0 })
        _ = split.record(.timeout, host: a, hostCount: 2, now: 0, roll: { 0 })
        // External 5xx do not advance the local-origin counter.
        for _ in 0..<4 { _ = split.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0, roll: { 0 }) }
        #expect(!split.isEjected(a))
        #expect(ejections(split.record(.connectFailed, host: a, hostCount: 2, now: 0, roll: { 0 })) == [.consecutiveLocalOriginFailure])
    }

    @Test func enforcementPercentageRolls() {
        var state = OutlierDetectorState(config: OutlierDetectionConfig(maxEjectionPercent: 100, enforcingConsecutive5xx: 30))
        for _ in 0..<4 { _ = state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0) }
        #expect(state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0, roll: { 30 })
            == [.detected(host: a, reason: .consecutive5xx, enforced: false, overflow: false)])
        for _ in 0..<4 { _ = state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0) }
        #expect(ejections(state.record(.httpResponse(status: 500), host: a, hostCount: 2, now: 0, roll: { 29 })) == [.consecutive5xx])
    }

    @Test func maxEjectionPercentLimitsEjections() {
        // The host objects stay alive so their identities stay distinct.
        let objects = (1...4).map { UpstreamHost(address: SocketEndpoint("10.0.1.\($0):80")!) }
        let hosts = objects.map(ObjectIdentifier.init)
        defer { withExtendedLifetime(objects) {} }
        var state = OutlierDetectorState(config: OutlierDetectionConfig(consecutive5xx: 1, maxEjectionPercent: 50))
        #expect(ejections(state.record(.httpResponse(status: 500), host: hosts[0], hostCount: 4, now: 0, roll: { 0 })).count == 1)
        #expect(ejections(state.record(.httpResponse(status: 500), host: hosts[1], hostCount: 4, now: 0, roll: { 0 })).count == 1)
        let third = state.record(.httpResponse(status: 500), host: hosts[2], hostCount: 4, now: 0, roll: { 0 })
        #expect(third == [.detected(host: hosts[2], reason: .consecutive5xx, enforced: true, overflow: true)])
        #expect(state.ejectedCount == 2)

        // The default 10% ejects nothing from a small cluster unless always_eject_one_host is set.
        var small = OutlierDetectorState(config: OutlierDetectionConfig(consecutive5xx: 1))
        #expect(ejections(small.record(.httpResponse(status: 500), host: hosts[0], hostCount: 4, now: 0, roll: { 0 })).isEmpty)
        var one = OutlierDetectorState(config: OutlierDetectionConfig(consecutive5xx: 1, alwaysEjectOneHost: true))
        #expect(ejections(one.record(.httpResponse(status: 500), host: hosts[0], hostCount: 4, now: 0, roll: { 0 })).count == 1)
        #expect(ejections(one.record(.httpResponse(status: 500), host: hosts[1], hostCount: 4, now: 0, roll: { 0 })).isEmpty)
    }

    @Test func ejectionTimeGrowsAndIsCapped() {
        var state = OutlierDetectorState(config: OutlierDetectionConfig(
            consecutive5xx: 1, interval: .seconds(10), baseEjectionTime: .seconds(30), maxEjectionTime: .seconds(50), maxEjectionPercent: 100))
        _ = state.record(.httpResponse(status: 500), host: a, hostCount: 1, now: 0, roll: { 0 })
        #expect(state.intervalElapsed(now: 29 * second).isEmpty)
        #expect(state.intervalElapsed(now: 30 * second) == [.unejected(host: a)])
        // Second ejection: 2 × 30s = 60s, capped at 50s.
        _ = state.record(.httpResponse(status: 500), host: a, hostCount: 1, now: 100 * second, roll: { 0 })
        #expect(state.intervalElapsed(now: 149 * second).isEmpty)
        #expect(state.intervalElapsed(now: 150 * second) == [.unejected(host: a)])
        #expect(state.ejectionDuration(times: 2) == 50 * second)
        #expect(state.ejectionDuration(times: 1) == 30 * second)
    }

    @Test func ejectionMultiplierDecaysWhileHealthy() {
        var state = OutlierDetectorState(config: OutlierDetectionConfig(
            consecutive5xx: 1, baseEjectionTime: .seconds(10), maxEjectionTime: .seconds(1000), maxEjectionPercent: 100))
        _ = state.record(.httpResponse(status: 500), host: a, hostCount: 1, now: 0, roll: { 0 })
        _ = state.intervalElapsed(now: 10 * second)  // returned
        _ = state.record(.httpResponse(status: 500), host: a, hostCount: 1, now: 10 * second, roll: { 0 })
        #expect(state.intervalElapsed(now: 29 * second).isEmpty)  // 2 × 10s
        #expect(state.intervalElapsed(now: 30 * second) == [.unejected(host: a)])
        // Two intervals in service bring the multiplier from 2 back to 0.
        _ = state.intervalElapsed(now: 40 * second)
        _ = state.intervalElapsed(now: 50 * second)
        _ = state.record(.httpResponse(status: 500), host: a, hostCount: 1, now: 50 * second, roll: { 0 })
        #expect(state.intervalElapsed(now: 60 * second) == [.unejected(host: a)])
    }

    @Test func detectorEjectsFromTheLoadBalancerAndKeepsStats() throws {
        let store = StatsStore()
        let config = ClusterConfig(
            name: "c", discovery: .staticEndpoints,
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: (1...4).map {
                Endpoint(address: .ip(SocketEndpoint("10.0.0.\($0):80")!))
            })]),
            outlierDetection: OutlierDetectionConfig(consecutive5xx: 2, maxEjectionPercent: 100))
        let cluster = UpstreamCluster(config: config, store: store)
        let detector = try #require(cluster.outlierDetector)
        let bad = cluster.hostSet.allHosts[0]
        detector.record(host: bad, event: .httpResponse(status: 500), now: 0)
        detector.record(host: bad, event: .httpResponse(status: 500), now: 0)
        #expect(bad.isEjected)
        #expect(!bad.isHealthy)
        for _ in 0..<50 { #expect(cluster.chooseHost(LoadBalancerContext()) !== bad) }
        func value(_ leaf: String) -> UInt64 { store.counter(.cluster("c", "outlier_detection.\(leaf)")).value }
        #expect(store.gauge(.cluster("c", "outlier_detection.ejections_active")).value == 1)
        #expect(value("ejections_enforced_total") == 1)
        #expect(value("ejections_enforced_consecutive_5xx") == 1)
        #expect(value("ejections_detected_consecutive_5xx") == 1)
        #expect(store.gauge(.cluster("c", "membership_healthy")).value == 3)
        detector.intervalElapsed(now: 30 * second)
        #expect(!bad.isEjected)
        #expect(store.gauge(.cluster("c", "outlier_detection.ejections_active")).value == 0)
        #expect(store.gauge(.cluster("c", "membership_healthy")).value == 4)
    }

    @Test func passingHealthCheckReturnsAnEjectedHost() throws {
        let store = StatsStore()
        let config = ClusterConfig(
            name: "c", discovery: .staticEndpoints,
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: [
                Endpoint(address: .ip(SocketEndpoint("10.0.0.1:80")!)),
            ])]),
            outlierDetection: OutlierDetectionConfig(consecutive5xx: 1, maxEjectionPercent: 100))
        let cluster = UpstreamCluster(config: config, store: store)
        let detector = try #require(cluster.outlierDetector)
        let host = cluster.hostSet.allHosts[0]
        detector.record(host: host, event: .httpResponse(status: 503), now: 0)
        #expect(host.isEjected)
        detector.activeHealthCheckSucceeded(host)
        #expect(!host.isEjected)
        #expect(store.gauge(.cluster("c", "outlier_detection.ejections_active")).value == 0)
    }

    @Test func newHostsOfAHealthCheckedClusterStartUnhealthy() {
        let check = HealthCheckConfig(kind: .tcp(send: Data(), receive: []), timeout: .seconds(1), interval: .seconds(1),
                                      unhealthyThreshold: 1, healthyThreshold: 1)
        let cluster = UpstreamCluster(config: ClusterConfig(name: "c", discovery: .eds(serviceName: "c"), healthChecks: [check]),
                                      store: StatsStore())
        cluster.replaceHosts([UpstreamHost(address: SocketEndpoint("10.0.0.9:80")!)])
        #expect(cluster.hostSet.allHosts.map(\.failedActiveHealthCheck) == [true])
        let plain = UpstreamCluster(config: ClusterConfig(name: "p", discovery: .eds(serviceName: "p")), store: StatsStore())
        plain.replaceHosts([UpstreamHost(address: SocketEndpoint("10.0.0.9:80")!)])
        #expect(plain.hostSet.allHosts.map(\.isHealthy) == [true])
    }
}
