import Foundation
import SluiceModel
@testable import SluiceProxy
import Testing

/// Upstream HTTP pools of hosts that leave their cluster are closed and dropped (loopback).
@Suite(.serialized) struct HTTPUpstreamPoolPruningTests {
    private static func configuration(upstreamPort: Int, http2: Bool = false) -> ProxyConfiguration {
        let routes = RouteConfiguration(name: "local", virtualHosts: [VirtualHost(name: "all", domains: ["*"], routes: [
            Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(target: .cluster("a"), timeout: .seconds(15)))),
        ])])
        return ProxyConfiguration(
            listeners: [ListenerConfig(
                name: "http", addresses: [ListenerAddress(endpoint: SocketEndpoint("127.0.0.1:0")!)],
                filterChains: [FilterChain(filters: [.httpConnectionManager(
                    HTTPConnectionManagerConfig(statPrefix: "ingress", routes: .inline(routes)))])])],
            clusters: [ClusterConfig(
                name: "a", discovery: .staticEndpoints, connectTimeout: .seconds(1),
                loadAssignment: LoadAssignment(localities: [LocalityEndpoints(
                    endpoints: [Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\(upstreamPort)")!))])]),
                upstreamHTTP: UpstreamHTTPOptions(protocolChoice: http2 ? .http2 : .http1))])
    }

    /// A proxy forwarding to `upstream`, and its listening port.
    private static func startProxy(upstream: Int, http2: Bool) async throws -> (ProxyServer, Int) {
        let server = ProxyServer(configuration: configuration(upstreamPort: upstream, http2: http2), placement: .proxyNamespace)
        try await server.start()
        return (server, Int(server.hostListenerAddresses[0].addresses[0].port))
    }

    /// Waits up to two seconds for `condition`.
    private func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<40 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    @Test(arguments: [false, true])
    func aDepartedHostsIdleConnectionsCloseAndItsPoolGoes(http2: Bool) async throws {
        let first = try HTTPTestUpstream(name: "first", http2: http2)
        let second = try HTTPTestUpstream(name: "second", http2: http2)
        defer { first.stop(); second.stop() }
        let (server, port) = try await Self.startProxy(upstream: first.port, http2: http2)

        let before = try await Task.detached { try HTTPTestClient(port: port).request("/") }.value
        #expect(before.header("x-upstream") == "first")
        #expect(stat(server, "cluster.a.upstream_cx_active") == 1)
        #expect(try await server.http.poolCount == 1)

        // The endpoint list changes in place: the first host leaves, its idle connection closes.
        await server.apply(Self.configuration(upstreamPort: second.port, http2: http2))
        #expect(try await eventually { stat(server, "cluster.a.upstream_cx_active") == 0 })
        #expect(try await server.http.poolCount == 0)

        let after = try await Task.detached { try HTTPTestClient(port: port).request("/") }.value
        #expect(after.header("x-upstream") == "second")
        #expect(try await server.http.poolCount == 1)
        await server.shutdown()
    }

    @Test(arguments: [false, true])
    func anExchangeInFlightFinishesBeforeItsConnectionCloses(http2: Bool) async throws {
        let first = try HTTPTestUpstream(name: "first", http2: http2)
        let second = try HTTPTestUpstream(name: "second", http2: http2)
        defer { first.stop(); second.stop() }
        let (server, port) = try await Self.startProxy(upstream: first.port, http2: http2)

        let slow = Task.detached { try HTTPTestClient(port: port).request("/delay/400") }
        #expect(try await eventually { stat(server, "cluster.a.upstream_rq_active") == 1 })
        await server.apply(Self.configuration(upstreamPort: second.port, http2: http2))
        let response = try await slow.value
        #expect(response.status == 200)
        #expect(response.header("x-upstream") == "first")
        // Its connection is not kept for another exchange once the response went out.
        #expect(try await eventually { stat(server, "cluster.a.upstream_cx_active") == 0 })
        #expect(try await server.http.poolCount == 0)
        await server.shutdown()
    }
}
