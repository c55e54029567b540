import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct HTTPFilterFaultTests {
    private let stats = StatsStore()

    private func filter(_ config: FaultConfig) throws -> FaultFilter {
        try FaultFilter(config: config, hcmStatPrefix: "ingress_http", stats: stats)
    }

    private func counter(_ leaf: String) -> UInt64 { stats.counter(.http("ingress_http", leaf)).value }
    private func gauge(_ leaf: String) -> Int64 { stats.gauge(.http("ingress_http", leaf)).value }

    @Test func fixedAbortFollowsThePercentage() throws {
        let fault = try filter(FaultConfig(abort: .init(kind: .httpStatus(503), percentage: .init(numerator: 30))))
        let request = FilterTestRequest.make()
        var stream = fault.makeStream()
        // 29 % 100 < 30: abort.
        var random = ScriptedRandom([29])
        let action = stream.decodeHeaders(request, upstreamCluster: "backend", random: &random)
        #expect(action == .abort(FilterLocalReply(status: 503, body: "fault filter abort", details: "fault_filter_abort",
                                                  flags: .faultInjected)))
        #expect(stream.responseFlags.shortString == "FI")
        #expect(counter("fault.aborts_injected") == 1)
        #expect(gauge("fault.active_faults") == 1)
        stream.streamEnded()
        #expect(gauge("fault.active_faults") == 0)

        // 130 % 100 = 30, not < 30: no abort.
        var other = fault.makeStream()
        var miss = ScriptedRandom([130])
        #expect(other.decodeHeaders(request, upstreamCluster: "backend", random: &miss) == .proceed)
        #expect(counter("fault.aborts_injected") == 1)
    }

    @Test func grpcAbortRepliesOKWithGRPCStatus() throws {
        let fault = try filter(FaultConfig(abort: .init(kind: .grpcStatus(14), percentage: .all)))
        var stream = fault.makeStream()
        var random = ScriptedRandom([])
        guard case .abort(let reply) = stream.decodeHeaders(FilterTestRequest.make(), upstreamCluster: nil, random: &random)
        else { Issue.record("no abort"); return }
        #expect(reply.status == 200)
        #expect(reply.grpcStatus == 14)
        #expect(reply.body == "fault filter abort")
    }

    @Test func fixedDelayThenAbortDrawsAgainAfterTheDelay() throws {
        let fault = try filter(FaultConfig(
            delay: .init(fixed: .milliseconds(1500), percentage: .init(numerator: 50)),
            abort: .init(kind: .httpStatus(418), percentage: .init(numerator: 10))))
        let request = FilterTestRequest.make(headers: [("x-envoy-downstream-service-cluster", "frontend")])
        var stream = fault.makeStream()
        var random = ScriptedRandom([49, 5])
        #expect(stream.decodeHeaders(request, upstreamCluster: "backend", random: &random) == .delay(.milliseconds(1500)))
        #expect(stream.responseFlags == .delayInjected)
        #expect(counter("fault.delays_injected") == 1)
        #expect(counter("fault.frontend.delays_injected") == 1)
        guard case .abort(let reply) = stream.delayElapsed(request, random: &random) else {
            Issue.record("no abort after the delay"); return
        }
        #expect(reply.status == 418)
        #expect(stream.responseFlags.shortString == "DI,FI")
        #expect(counter("fault.frontend.aborts_injected") == 1)
        #expect(gauge("fault.active_faults") == 1)
        stream.streamEnded()
        #expect(gauge("fault.active_faults") == 0)
    }

    @Test func delayWithoutAbortReleasesTheActiveFaultAfterTheDelay() throws {
        let fault = try filter(FaultConfig(delay: .init(fixed: .seconds(2), percentage: .all)))
        var stream = fault.makeStream()
        var random = ScriptedRandom([])
        let request = FilterTestRequest.make()
        #expect(stream.decodeHeaders(request, upstreamCluster: nil, random: &random) == .delay(.seconds(2)))
        #expect(gauge("fault.active_faults") == 1)
        #expect(stream.delayElapsed(request, random: &random) == .proceed)
        #expect(gauge("fault.active_faults") == 0)
    }

    @Test func headerControlledDelayAndPercentage() throws {
        let fault = try filter(FaultConfig(delay: .init(fixed: nil, percentage: .init(numerator: 50))))
        var random = ScriptedRandom([39, 45])
        // Header percentage 40 (below the configured 50): 39 delays.
        let request = FilterTestRequest.make(headers: [
            ("x-envoy-fault-delay-request", "250"), ("x-envoy-fault-delay-request-percentage", "40"),
        ])
        var first = fault.makeStream()
        #expect(first.decodeHeaders(request, upstreamCluster: nil, random: &random) == .delay(.milliseconds(250)))
        // 45 is inside the configured 50 but not inside the header's 40.
        var second = fault.makeStream()
        #expect(second.decodeHeaders(request, upstreamCluster: nil, random: &random) == .proceed)
        // The header can't raise the percentage above the configured one.
        #expect(FaultFilter.Stream.headerPercentage(
            FilterTestRequest.make(headers: [("x-envoy-fault-delay-request-percentage", "90")]),
            "x-envoy-fault-delay-request-percentage", .init(numerator: 50)) == .init(numerator: 50))
        // No header: no delay; zero: no delay.
        var third = fault.makeStream()
        var always = ScriptedRandom([0])
        #expect(third.decodeHeaders(FilterTestRequest.make(), upstreamCluster: nil, random: &always) == .proceed)
        var fourth = fault.makeStream()
        var always2 = ScriptedRandom([0])
        #expect(fourth.decodeHeaders(FilterTestRequest.make(headers: [("x-envoy-fault-delay-request", "0")]),
                                     upstreamCluster: nil, random: &always2) == .proceed)
    }

    @Test func headerControlledAbort() throws {
        let fault = try filter(FaultConfig(abort: .init(kind: .fromHeader, percentage: .all)))
        var random = ScriptedRandom([])
        var http = fault.makeStream()
        guard case .abort(let reply) = http.decodeHeaders(
            FilterTestRequest.make(headers: [("x-envoy-fault-abort-request", "429")]), upstreamCluster: nil, random: &random)
        else { Issue.record("no abort"); return }
        #expect(reply.status == 429)
        #expect(reply.grpcStatus == nil)

        var grpc = fault.makeStream()
        guard case .abort(let grpcReply) = grpc.decodeHeaders(
            FilterTestRequest.make(headers: [("x-envoy-fault-abort-grpc-request", "5")]), upstreamCluster: nil, random: &random)
        else { Issue.record("no gRPC abort"); return }
        #expect(grpcReply.status == 200)
        #expect(grpcReply.grpcStatus == 5)

        // 700 is not an HTTP status: no abort.
        var bad = fault.makeStream()
        #expect(bad.decodeHeaders(FilterTestRequest.make(headers: [("x-envoy-fault-abort-request", "700")]),
                                  upstreamCluster: nil, random: &random) == .proceed)
        // No header: nothing.
        var none = fault.makeStream()
        #expect(none.decodeHeaders(FilterTestRequest.make(), upstreamCluster: nil, random: &random) == .proceed)
    }

    @Test func headerClusterAndNodeConditions() throws {
        let fault = try filter(FaultConfig(
            abort: .init(kind: .httpStatus(500), percentage: .all), upstreamCluster: "reviews",
            headers: [HeaderMatcher(name: "x-user", rule: .string(StringMatcher(.exact("jason"))))],
            downstreamNodes: ["node-a"]))
        var random = ScriptedRandom([])
        let matching = FilterTestRequest.make(headers: [("x-user", "jason"), ("x-envoy-downstream-service-node", "node-a")])
        var stream = fault.makeStream()
        #expect(stream.decodeHeaders(matching, upstreamCluster: "ratings", random: &random) == .proceed)
        var wrongNode = fault.makeStream()
        #expect(wrongNode.decodeHeaders(FilterTestRequest.make(headers: [("x-user", "jason"),
                                                                         ("x-envoy-downstream-service-node", "node-b")]),
                                        upstreamCluster: "reviews", random: &random) == .proceed)
        var wrongHeader = fault.makeStream()
        #expect(wrongHeader.decodeHeaders(FilterTestRequest.make(headers: [("x-user", "bob"),
                                                                           ("x-envoy-downstream-service-node", "node-a")]),
                                          upstreamCluster: "reviews", random: &random) == .proceed)
        var hit = fault.makeStream()
        guard case .abort = hit.decodeHeaders(matching, upstreamCluster: "reviews", random: &random) else {
            Issue.record("no abort"); return
        }
    }

    @Test func maxActiveFaultsOverflows() throws {
        let fault = try filter(FaultConfig(delay: .init(fixed: .seconds(1), percentage: .all), maxActiveFaults: 2))
        var random = ScriptedRandom([])
        let request = FilterTestRequest.make()
        var streams = (0..<3).map { _ in fault.makeStream() }
        #expect(streams[0].decodeHeaders(request, upstreamCluster: nil, random: &random) == .delay(.seconds(1)))
        #expect(streams[1].decodeHeaders(request, upstreamCluster: nil, random: &random) == .delay(.seconds(1)))
        #expect(streams[2].decodeHeaders(request, upstreamCluster: nil, random: &random) == .proceed)
        #expect(counter("fault.faults_overflow") == 1)
        #expect(gauge("fault.active_faults") == 2)
        streams[0].streamEnded()
        var again = fault.makeStream()
        #expect(again.decodeHeaders(request, upstreamCluster: nil, random: &random) == .delay(.seconds(1)))
    }

    @Test func perRouteConfigReplacesOrDisables() throws {
        let fault = try filter(FaultConfig(abort: .init(kind: .httpStatus(500), percentage: .all)))
        var random = ScriptedRandom([])
        var disabled = fault.makeStream()
        #expect(disabled.decodeHeaders(FilterTestRequest.make(), routeOverride: .disabled, upstreamCluster: nil,
                                       random: &random) == .proceed)
        var replaced = fault.makeStream()
        let perRoute = FaultConfig(abort: .init(kind: .httpStatus(404), percentage: .all))
        guard case .abort(let reply) = replaced.decodeHeaders(FilterTestRequest.make(), routeOverride: .fault(perRoute),
                                                               upstreamCluster: nil, random: &random)
        else { Issue.record("no abort"); return }
        #expect(reply.status == 404)
    }

    @Test func badConfigurationIsRejectedWithItsField() {
        #expect(throws: FilterConfigError(field: "envoy.filters.http.fault.abort.http_status", problem: "99 is not in [200, 600)")) {
            _ = try FaultFilter(config: FaultConfig(abort: .init(kind: .httpStatus(99), percentage: .all)),
                                hcmStatPrefix: "x", stats: StatsStore())
        }
    }
}
