import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceModel
@testable import SluiceProxy
import Testing

/// A loopback server answering every connection with one canned reply, then closing.
private final class CannedServer: Sendable {
    let reply = NIOLockedValueBox<[UInt8]>(Array("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".utf8))
    let requests = NIOLockedValueBox<[String]>([])
    let channel: any Channel

    init(group: any EventLoopGroup) throws {
        let replyBox = reply
        let requestsBox = requests
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CannedReplyHandler(reply: replyBox, requests: requestsBox))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    var port: UInt16 { UInt16(channel.localAddress!.port!) }

    func setStatus(_ status: Int) {
        reply.withLockedValue { $0 = Array("HTTP/1.1 \(status) X\r\ncontent-length: 0\r\n\r\n".utf8) }
    }
}

private final class CannedReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: NIOLockedValueBox<[UInt8]>
    let requests: NIOLockedValueBox<[String]>

    init(reply: NIOLockedValueBox<[UInt8]>, requests: NIOLockedValueBox<[String]>) {
        self.reply = reply
        self.requests = requests
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: unwrapInboundIn(data))
        requests.withLockedValue { $0.append(text) }
        let bytes = reply.withLockedValue { $0 }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes))).whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

@Suite(.serialized) struct HealthCheckTests {
    private func config(port: UInt16, check: HealthCheckConfig) -> ClusterConfig {
        ClusterConfig(
            name: "svc", discovery: .staticEndpoints,
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: [
                Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\(port)")!)),
            ])]),
            healthChecks: [check])
    }

    private func waitFor(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<300 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func sessionStateFollowsEnvoyThresholds() {
        let check = HealthCheckConfig(kind: .tcp(send: Data(), receive: []), timeout: .seconds(1), interval: .seconds(5),
                                      unhealthyThreshold: 3, healthyThreshold: 2, unhealthyInterval: .seconds(9),
                                      unhealthyEdgeInterval: .seconds(1), healthyEdgeInterval: .seconds(2))
        var state = HealthCheckSessionState(config: check)
        #expect(state.failed)
        // The first success of a new host is enough.
        #expect(state.record(.success) == .becameHealthy)
        #expect(state.nextInterval(after: .becameHealthy, clusterHasTraffic: true) == .seconds(2))
        #expect(state.nextInterval(after: .unchanged, clusterHasTraffic: true) == .seconds(5))
        #expect(state.nextInterval(after: .unchanged, clusterHasTraffic: false) == .seconds(60))
        // Network failures need the unhealthy threshold.
        #expect(state.record(.networkFailure) == .pending)
        #expect(state.record(.networkFailure) == .pending)
        #expect(state.record(.networkFailure) == .becameUnhealthy)
        #expect(state.nextInterval(after: .becameUnhealthy, clusterHasTraffic: true) == .seconds(1))
        #expect(state.nextInterval(after: .unchanged, clusterHasTraffic: true) == .seconds(9))
        // After the first check the healthy threshold applies.
        #expect(state.record(.success) == .pending)
        #expect(state.record(.success) == .becameHealthy)
        // A wrong answer marks the host unhealthy at once.
        #expect(state.record(.activeFailure) == .becameUnhealthy)
    }

    @Test func jitterStaysWithinBounds() {
        let check = HealthCheckConfig(kind: .tcp(send: Data(), receive: []), timeout: .seconds(1), interval: .seconds(10),
                                      intervalJitter: .milliseconds(500), intervalJitterPercent: 10,
                                      unhealthyThreshold: 1, healthyThreshold: 1)
        let state = HealthCheckSessionState(config: check)
        #expect(state.jittered(.seconds(10), random: { _ in 0 }) == .seconds(10))
        #expect(state.jittered(.seconds(10), random: { $0 - 1 }) == .milliseconds(10_000 + 999 + 499))
    }

    @Test func probeParsesAnswers() {
        #expect(HealthCheckProbeHandler.statusCode(in: Array("HTTP/1.1 204 No Content\r\n".utf8)) == 204)
        #expect(HealthCheckProbeHandler.statusCode(in: Array("HTTP/1.1 20".utf8)) == nil)
        #expect(HealthCheckProbeHandler.statusCode(in: Array("garbage\r\n".utf8)) == -1)
        #expect(HealthCheckProbeHandler.containsInOrder(Array("xxPONGyyOK".utf8), [Array("PONG".utf8), Array("OK".utf8)]))
        #expect(!HealthCheckProbeHandler.containsInOrder(Array("OKxxPONG".utf8), [Array("PONG".utf8), Array("OK".utf8)]))
        let request = String(decoding: HealthCheckProbeHandler.httpRequest(
            HTTPHealthCheck(path: "/healthz", headers: [.init(name: "x-check", value: "1")]), clusterName: "svc"), as: UTF8.self)
        #expect(request == "GET /healthz HTTP/1.1\r\nhost: svc\r\nuser-agent: Envoy/HC\r\nconnection: close\r\nx-check: 1\r\n\r\n")
    }

    @Test func httpHealthCheckTransitionsOverLoopback() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try CannedServer(group: group)
        let store = StatsStore()
        let check = HealthCheckConfig(
            kind: .http(HTTPHealthCheck(path: "/healthz", host: "svc.local")), timeout: .seconds(1), interval: .milliseconds(30),
            unhealthyThreshold: 2, healthyThreshold: 2, noTrafficInterval: .milliseconds(30))
        let cluster = UpstreamCluster(config: config(port: server.port, check: check), store: store)
        let host = cluster.hostSet.allHosts[0]
        #expect(host.failedActiveHealthCheck)
        #expect(!host.isHealthy)
        let checker = HealthChecker(
            cluster: cluster, config: check, socketFactory: SocketFactory(namespace: .home, mark: nil),
            eventLoop: group.next(), stats: try #require(cluster.healthCheckStats))
        checker.start()
        #expect(await waitFor { host.isHealthy })
        #expect(store.gauge(.cluster("svc", "membership_healthy")).value == 1)
        #expect(server.requests.withLockedValue { $0.first?.hasPrefix("GET /healthz HTTP/1.1\r\nhost: svc.local\r\n") } == true)

        server.setStatus(503)
        #expect(await waitFor { !host.isHealthy })
        #expect(store.counter(.cluster("svc", "health_check.failure")).value >= 1)

        server.setStatus(200)
        #expect(await waitFor { host.isHealthy })

        // A closed port is a network failure; two of them make the host unhealthy.
        try await server.channel.close()
        #expect(await waitFor { !host.isHealthy })
        #expect(store.counter(.cluster("svc", "health_check.network_failure")).value >= 2)
        #expect(store.counter(.cluster("svc", "health_check.attempt")).value >= 5)
        #expect(store.counter(.cluster("svc", "health_check.success")).value >= 2)
        checker.stop()
        try await group.shutdownGracefully()
    }

    @Test func tcpHealthCheckWithPayloads() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try CannedServer(group: group)
        server.reply.withLockedValue { $0 = Array("PONG".utf8) }
        let store = StatsStore()
        let check = HealthCheckConfig(
            kind: .tcp(send: Data("PING".utf8), receive: [Data("PONG".utf8)]), timeout: .milliseconds(300),
            interval: .milliseconds(30), unhealthyThreshold: 1, healthyThreshold: 1, noTrafficInterval: .milliseconds(30))
        let cluster = UpstreamCluster(config: config(port: server.port, check: check), store: store)
        let host = cluster.hostSet.allHosts[0]
        let checker = HealthChecker(
            cluster: cluster, config: check, socketFactory: SocketFactory(namespace: .home, mark: nil),
            eventLoop: group.next(), stats: try #require(cluster.healthCheckStats))
        checker.start()
        #expect(await waitFor { host.isHealthy })
        #expect(server.requests.withLockedValue { $0.first } == "PING")
        // A reply without the expected bytes fails (connection closes before they arrive).
        server.reply.withLockedValue { $0 = Array("NOPE".utf8) }
        #expect(await waitFor { !host.isHealthy })
        checker.stop()
        try await server.channel.close()
        try await group.shutdownGracefully()
    }
}

@Suite(.serialized) struct ClusterManagerHealthTests {
    @Test func startRunsHealthChecksAndWaitsForTheFirstRound() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try CannedServer(group: group)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let store = StatsStore()
        let check = HealthCheckConfig(
            kind: .http(HTTPHealthCheck(path: "/")), timeout: .seconds(1), interval: .seconds(10),
            unhealthyThreshold: 1, healthyThreshold: 1)
        let config = ClusterConfig(
            name: "svc", discovery: .staticEndpoints,
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: [
                Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\(server.port)")!)),
            ])]),
            healthChecks: [check])
        let manager = ClusterManager(
            configs: [config], store: store, resolverPool: pool, logger: .init(label: "test"),
            healthCheckSockets: SocketFactory(namespace: .home, mark: nil))
        try await manager.start(on: group.next()).get()
        // start() returned after the first round, so the host is already known healthy.
        let host = try #require(manager.cluster(named: "svc")?.hostSet.allHosts.first)
        #expect(host.isHealthy)
        #expect(store.counter(.cluster("svc", "health_check.success")).value == 1)
        #expect(store.gauge(.cluster("svc", "health_check.healthy")).value == 1)
        manager.shutdown()
        try await server.channel.close()
        try await pool.shutdownGracefully()
        try await group.shutdownGracefully()
    }
}
