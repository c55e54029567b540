import Foundation
import SluiceModel
@testable import SluiceProxy
import Testing

/// The TCP proxy on loopback in the test's own namespace: real sockets, no capture rules.
@Suite(.serialized) struct TCPRelayTests {
    private func proxy(
        upstreamPorts: [Int], idleTimeout: Duration? = .seconds(3600), maxConnectAttempts: Int = 1,
        bufferLimit: Int = 1 << 20, cluster: String = "backend", route: TCPProxyConfig.Route? = nil,
        extraClusters: [ClusterConfig] = []
    ) async throws -> (ProxyServer, Int) {
        let endpoints = upstreamPorts.map { Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\($0)")!)) }
        let config = ProxyConfiguration(
            listeners: [ListenerConfig(
                name: "l",
                addresses: [ListenerAddress(endpoint: SocketEndpoint("127.0.0.1:0")!)],
                filterChains: [FilterChain(filters: [.tcpProxy(TCPProxyConfig(
                    statPrefix: "relay", route: route ?? .cluster(cluster), idleTimeout: idleTimeout,
                    maxConnectAttempts: maxConnectAttempts))])],
                perConnectionBufferLimitBytes: bufferLimit)],
            clusters: [ClusterConfig(
                name: "backend", discovery: .staticEndpoints, connectTimeout: .seconds(2),
                loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: endpoints)]),
                perConnectionBufferLimitBytes: bufferLimit)] + extraClusters)
        let server = ProxyServer(configuration: config, placement: .proxyNamespace)
        try await server.start()
        let port = Int(server.hostListenerAddresses[0].addresses[0].port)
        return (server, port)
    }


    @Test func relaysBothWaysIntact() async throws {
        let upstream = try TestServer(.echo)
        defer { upstream.stop() }
        let (server, port) = try await proxy(upstreamPorts: [upstream.port])
        let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let echoed = try await Task.detached {
            let client = try TestClient(port: port)
            let writer = Thread { try? client.send(payload); client.shutdownWrite() }
            writer.start()
            return try client.readToEnd()
        }.value
        #expect(echoed == payload)
        #expect(stat(server, "tcp.relay.downstream_cx_rx_bytes_total") == Int64(payload.count))
        #expect(stat(server, "cluster.backend.upstream_cx_total") == 1)
        await server.shutdown()
    }

    @Test func halfCloseStillDeliversTheOtherDirection() async throws {
        let upstream = try TestServer(.countThenReply)
        defer { upstream.stop() }
        let (server, port) = try await proxy(upstreamPorts: [upstream.port])
        let reply = try await Task.detached {
            let client = try TestClient(port: port)
            try client.send([UInt8](repeating: 1, count: 100_000))
            client.shutdownWrite()
            return String(decoding: try client.readToEnd(), as: UTF8.self)
        }.value
        #expect(reply == "100000\n")
        await server.shutdown()
    }

    @Test func slowReaderPausesTheUpstream() async throws {
        let upstream = try TestServer(.stream(count: 64 << 20))
        defer { upstream.stop() }
        let (server, port) = try await proxy(upstreamPorts: [upstream.port], bufferLimit: 64 * 1024)
        let client = try TestClient(port: port)
        _ = try client.read(1024)
        try await Task.sleep(for: .milliseconds(500))
        let paused = stat(server, "cluster.backend.upstream_flow_control_paused_reading_total") ?? 0
        #expect(paused >= 1, "the proxy must stop reading the upstream while the client does not read")
        let relayed = stat(server, "cluster.backend.upstream_cx_rx_bytes_total") ?? 0
        #expect(relayed < 16 << 20, "only kernel buffers plus the bounded proxy buffer may be in flight, not \(relayed) bytes")
        let rest = try await Task.detached { try client.readToEnd() }.value
        #expect(rest.count + 1024 == 64 << 20)
        await server.shutdown()
    }

    @Test func failedConnectsAreRetriedOnOtherHosts() async throws {
        let upstream = try TestServer(.echo)
        defer { upstream.stop() }
        let closedPort = try TestServer(.echo)
        let deadPort = closedPort.port
        closedPort.stop()
        let (server, port) = try await proxy(upstreamPorts: [deadPort, upstream.port], maxConnectAttempts: 3)
        for _ in 0..<4 {
            let reply = try await Task.detached {
                let client = try TestClient(port: port)
                try client.send(Array("ping".utf8))
                client.shutdownWrite()
                return try client.readToEnd()
            }.value
            #expect(reply == Array("ping".utf8))
        }
        #expect((stat(server, "cluster.backend.upstream_cx_connect_fail") ?? 0) >= 1)
        await server.shutdown()
    }

    @Test func exhaustedAttemptsCloseTheDownstream() async throws {
        let closed = try TestServer(.echo)
        let deadPort = closed.port
        closed.stop()
        let (server, port) = try await proxy(upstreamPorts: [deadPort], maxConnectAttempts: 2)
        let reply = try await Task.detached {
            let client = try TestClient(port: port)
            return try client.readToEnd()
        }.value
        #expect(reply.isEmpty)
        #expect(stat(server, "cluster.backend.upstream_cx_connect_fail") == 2)
        #expect(stat(server, "cluster.backend.upstream_cx_connect_attempts_exceeded") == 1)
        await server.shutdown()
    }

    @Test func idleConnectionsAreClosed() async throws {
        let upstream = try TestServer(.echo)
        defer { upstream.stop() }
        let (server, port) = try await proxy(upstreamPorts: [upstream.port], idleTimeout: .milliseconds(300))
        let started = Date()
        let reply = try await Task.detached {
            let client = try TestClient(port: port)
            try client.send(Array("x".utf8))
            return try client.readToEnd()
        }.value
        #expect(reply == Array("x".utf8))
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(stat(server, "tcp.relay.idle_timeout") == 1)
        await server.shutdown()
    }

    @Test func strictDNSClustersResolveAndServe() async throws {
        let upstream = try TestServer(.echo)
        defer { upstream.stop() }
        let dns = ClusterConfig(
            name: "named", discovery: .strictDNS(refreshRate: .seconds(5), lookupFamily: .v4Only, respectTTL: false),
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: [
                Endpoint(address: .hostname("localhost", port: UInt16(upstream.port))),
            ])]))
        let (server, port) = try await proxy(upstreamPorts: [], cluster: "named", extraClusters: [dns])
        #expect(server.isReady, "DNS clusters resolve before the proxy reports ready")
        let reply = try await Task.detached {
            let client = try TestClient(port: port)
            try client.send(Array("dns".utf8))
            client.shutdownWrite()
            return try client.readToEnd()
        }.value
        #expect(reply == Array("dns".utf8))
        #expect(server.clusters.cluster(named: "named")?.hostSet.allHosts.map(\.address.description) == ["127.0.0.1:\(upstream.port)"])
        await server.shutdown()
    }

    @Test func weightedClustersSplitConnections() async throws {
        let first = try TestServer(.echo)
        let second = try TestServer(.echo)
        defer { first.stop(); second.stop() }
        let other = ClusterConfig(
            name: "other", discovery: .staticEndpoints,
            loadAssignment: LoadAssignment(localities: [LocalityEndpoints(endpoints: [
                Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\(second.port)")!)),
            ])]))
        let (server, port) = try await proxy(
            upstreamPorts: [first.port],
            route: .weightedClusters([WeightedCluster(name: "backend", weight: 1), WeightedCluster(name: "other", weight: 1)]),
            extraClusters: [other])
        for _ in 0..<40 {
            _ = try await Task.detached {
                let client = try TestClient(port: port)
                client.shutdownWrite()
                return try client.readToEnd()
            }.value
        }
        let backend = stat(server, "cluster.backend.upstream_cx_total") ?? 0
        let others = stat(server, "cluster.other.upstream_cx_total") ?? 0
        #expect(backend + others == 40)
        #expect(backend > 5 && others > 5, "both weighted clusters get connections: \(backend)/\(others)")
        await server.shutdown()
    }

    @Test func unknownClusterIsNoRoute() async throws {
        let (server, port) = try await proxy(upstreamPorts: [], cluster: "missing")
        let reply = try await Task.detached { try TestClient(port: port).readToEnd() }.value
        #expect(reply.isEmpty)
        #expect(stat(server, "tcp.relay.downstream_cx_no_route") == 1)
        await server.shutdown()
    }
}
