import Foundation
import SluiceModel
@testable import SluiceProxy
import Testing

/// The TCP proxy's use of the upstream resilience API on loopback: max_connections and
/// outlier detection fed by connect results.
@Suite(.serialized) struct CircuitBreakerTCPProxyTests {
    private func proxy(cluster: ClusterConfig) async throws -> (ProxyServer, Int) {
        let config = ProxyConfiguration(
            listeners: [ListenerConfig(
                name: "l",
                addresses: [ListenerAddress(endpoint: SocketEndpoint("127.0.0.1:0")!)],
                filterChains: [FilterChain(filters: [.tcpProxy(TCPProxyConfig(statPrefix: "relay", route: .cluster(cluster.name)))])])],
            clusters: [cluster])
        let server = ProxyServer(configuration: config, placement: .proxyNamespace)
        try await server.start()
        return (server, Int(server.hostListenerAddresses[0].addresses[0].port))
    }


    private func backend(port: Int) -> ClusterConfig {
        ClusterConfig(
            name: "backend", discovery: .staticEndpoints, connectTimeout: .seconds(2),
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: [
                Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\(port)")!)),
            ])]))
    }

    @Test func maxConnectionsRefusesTheNextConnection() async throws {
        let upstream = try TestServer(.echo)
        defer { upstream.stop() }
        var cluster = backend(port: upstream.port)
        cluster.circuitBreakers.defaultPriority.maxConnections = 1
        let (server, port) = try await proxy(cluster: cluster)
        let first = try TestClient(port: port)
        try first.send(Array("a".utf8))
        #expect(try first.read(1) == Array("a".utf8))
        #expect(stat(server, "cluster.backend.circuit_breakers.default.cx_open") == 1)
        let refused = try await Task.detached {
            let client = try TestClient(port: port)
            return try client.readToEnd()
        }.value
        #expect(refused.isEmpty)
        #expect(stat(server, "cluster.backend.upstream_cx_overflow") == 1)
        #expect(stat(server, "cluster.backend.upstream_cx_total") == 1)
        first.shutdownWrite()
        _ = try first.readToEnd()
        // The limit is released with the first upstream connection.
        for _ in 0..<200 where stat(server, "cluster.backend.circuit_breakers.default.cx_open") != 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(stat(server, "cluster.backend.circuit_breakers.default.cx_open") == 0)
        await server.shutdown()
    }

    @Test func connectFailuresEjectTheHost() async throws {
        let closed = try TestServer(.echo)
        let deadPort = closed.port
        closed.stop()
        var cluster = backend(port: deadPort)
        cluster.outlierDetection = OutlierDetectionConfig(consecutive5xx: 2, maxEjectionPercent: 100)
        let (server, port) = try await proxy(cluster: cluster)
        for _ in 0..<2 {
            let reply = try await Task.detached { try TestClient(port: port).readToEnd() }.value
            #expect(reply.isEmpty)
        }
        #expect(stat(server, "cluster.backend.outlier_detection.ejections_enforced_consecutive_5xx") == 1)
        #expect(stat(server, "cluster.backend.outlier_detection.ejections_active") == 1)
        #expect(stat(server, "cluster.backend.membership_healthy") == 0)
        await server.shutdown()
    }
}
