import Foundation
import SluiceModel
@testable import SluiceProxy
import Testing

/// The HTTP connection manager on loopback: real sockets, HTTP/1.1 clients and upstreams.
@Suite(.serialized) struct HTTPConnectionManagerTests {
    private func proxy(
        routes: RouteConfiguration, clusters: [String: [Int]], upstreamIdleTimeout: Duration? = .seconds(3600),
        manager: (inout HTTPConnectionManagerConfig) -> Void = { _ in }
    ) async throws -> (ProxyServer, Int) {
        var hcm = HTTPConnectionManagerConfig(statPrefix: "ingress", routes: .inline(routes))
        manager(&hcm)
        let config = ProxyConfiguration(
            listeners: [ListenerConfig(
                name: "http", addresses: [ListenerAddress(endpoint: SocketEndpoint("127.0.0.1:0")!)],
                filterChains: [FilterChain(filters: [.httpConnectionManager(hcm)])])],
            clusters: clusters.map { name, ports in
                ClusterConfig(
                    name: name, discovery: .staticEndpoints, connectTimeout: .seconds(1),
                    loadAssignment: LoadAssignment(localities: [LocalityEndpoints(
                        endpoints: ports.map { Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\($0)")!)) })]),
                    upstreamHTTP: UpstreamHTTPOptions(idleTimeout: upstreamIdleTimeout))
            })
        let server = ProxyServer(configuration: config, placement: .proxyNamespace)
        try await server.start()
        return (server, Int(server.hostListenerAddresses[0].addresses[0].port))
    }


    private static func table(_ routes: [Route], domains: [String] = ["*"]) -> RouteConfiguration {
        RouteConfiguration(name: "local", virtualHosts: [VirtualHost(name: "all", domains: domains, routes: routes)])
    }

    private static func forward(_ prefix: String, to cluster: String, retry: RetryPolicy? = nil, timeout: Duration? = .seconds(15)) -> Route {
        Route(match: RouteMatch(path: .prefix(prefix)), action: .forward(RouteAction(target: .cluster(cluster), timeout: timeout, retryPolicy: retry)))
    }

    @Test func forwardsKeepAliveRequestsWithEnvoyHeaders() async throws {
        let upstream = try HTTPTestUpstream(name: "a")
        defer { upstream.stop() }
        let (server, port) = try await proxy(routes: Self.table([Self.forward("/", to: "a")]), clusters: ["a": [upstream.port]])
        let responses = try await Task.detached {
            let client = try HTTPTestClient(port: port)
            return try (0..<5).map { _ in try client.request("/hello?x=1") }
        }.value
        for response in responses {
            #expect(response.status == 200)
            #expect(response.header("x-upstream") == "a")
            #expect(response.header("server") == "envoy")
            #expect(response.header("x-envoy-upstream-service-time") != nil)
            #expect(response.body.hasPrefix("GET /hello?x=1\n"))
            #expect(response.body.contains("x-forwarded-proto: http"))
            #expect(response.body.contains("x-request-id: "))
            #expect(response.body.contains("x-envoy-expected-rq-timeout-ms: 15000"))
            #expect(response.body.contains("host: example.com"))
        }
        #expect(stat(server, "http.ingress.downstream_rq_2xx") == 5)
        #expect(stat(server, "cluster.a.upstream_rq_200") == 5)
        #expect(stat(server, "cluster.a.upstream_cx_http1_total") == 1)
        await server.shutdown()
    }

    @Test func answersNoRouteAndUnknownClusterLocally() async throws {
        let (server, port) = try await proxy(
            routes: Self.table([Self.forward("/known", to: "missing")]), clusters: [:])
        let (noRoute, noCluster) = try await Task.detached {
            let client = try HTTPTestClient(port: port)
            return (try client.request("/other"), try client.request("/known"))
        }.value
        #expect(noRoute.status == 404)
        #expect(noCluster.status == 503)
        #expect(stat(server, "http.ingress.no_route") == 1)
        #expect(stat(server, "http.ingress.no_cluster") == 1)
        await server.shutdown()
    }

    @Test func retriesFailedAttemptsOnAnotherHost() async throws {
        let good = try HTTPTestUpstream(name: "good")
        defer { good.stop() }
        let closedPort = try HTTPTestUpstream(name: "gone")
        let deadPort = closedPort.port
        closedPort.stop()
        let retry = RetryPolicy(retryOn: [.connectFailure, .fiveXX], numRetries: 3, avoidPreviousHosts: true, backOffBase: .milliseconds(1))
        let (server, port) = try await proxy(
            routes: Self.table([Self.forward("/", to: "pair", retry: retry)]), clusters: ["pair": [deadPort, good.port]])
        let responses = try await Task.detached {
            let client = try HTTPTestClient(port: port)
            return try (0..<4).map { _ in try client.request("/") }
        }.value
        #expect(responses.allSatisfy { $0.status == 200 && $0.header("x-upstream") == "good" })
        #expect((stat(server, "cluster.pair.upstream_rq_retry") ?? 0) >= 1)
        await server.shutdown()
    }

    @Test func upstreamConnectFailureIsA503WithEnvoysBody() async throws {
        let gone = try HTTPTestUpstream(name: "gone")
        let deadPort = gone.port
        gone.stop()
        let (server, port) = try await proxy(routes: Self.table([Self.forward("/", to: "dead")]), clusters: ["dead": [deadPort]])
        let response = try await Task.detached { try HTTPTestClient(port: port).request("/") }.value
        #expect(response.status == 503)
        #expect(response.body.hasPrefix("upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"))
        await server.shutdown()
    }

    @Test func routeTimeoutAnswers504() async throws {
        let upstream = try HTTPTestUpstream(name: "slow")
        defer { upstream.stop() }
        let (server, port) = try await proxy(
            routes: Self.table([Self.forward("/", to: "slow", timeout: .milliseconds(200))]), clusters: ["slow": [upstream.port]])
        let response = try await Task.detached { try HTTPTestClient(port: port).request("/delay/2000") }.value
        #expect(response.status == 504)
        #expect(response.body == "upstream request timeout")
        #expect(stat(server, "cluster.slow.upstream_rq_timeout") == 1)
        await server.shutdown()
    }

    @Test func retriesOn5xxThenPassesTheLastResponse() async throws {
        let upstream = try HTTPTestUpstream(name: "flaky")
        defer { upstream.stop() }
        let retry = RetryPolicy(retryOn: [.fiveXX], numRetries: 2, backOffBase: .milliseconds(1))
        let (server, port) = try await proxy(
            routes: Self.table([Self.forward("/", to: "flaky", retry: retry)]), clusters: ["flaky": [upstream.port]])
        let response = try await Task.detached { try HTTPTestClient(port: port).request("/status/503") }.value
        #expect(response.status == 503)
        #expect(response.header("x-upstream") == "flaky")
        #expect(stat(server, "cluster.flaky.upstream_rq_retry") == 2)
        #expect(stat(server, "cluster.flaky.upstream_rq_503") == 3)
        await server.shutdown()
    }

    @Test func idleUpstreamConnectionsCloseAfterTheClustersIdleTimeout() async throws {
        let upstream = try HTTPTestUpstream(name: "a")
        defer { upstream.stop() }
        let (server, port) = try await proxy(
            routes: Self.table([Self.forward("/", to: "a")]), clusters: ["a": [upstream.port]],
            upstreamIdleTimeout: .milliseconds(200))
        let first = try await Task.detached { try HTTPTestClient(port: port).request("/") }.value
        #expect(first.status == 200)
        try await Task.sleep(for: .milliseconds(600))
        #expect(stat(server, "cluster.a.upstream_cx_idle_timeout") == 1)
        #expect(stat(server, "cluster.a.upstream_cx_active") == 0)
        let second = try await Task.detached { try HTTPTestClient(port: port).request("/") }.value
        #expect(second.status == 200)
        #expect(stat(server, "cluster.a.upstream_cx_http1_total") == 2)
        await server.shutdown()
    }

    @Test func pipelinedRequestsAreAnsweredInOrderUntilConnectionClose() async throws {
        let upstream = try HTTPTestUpstream(name: "a")
        defer { upstream.stop() }
        let (server, port) = try await proxy(
            routes: Self.table([Self.forward("/p", to: "a"), Self.forward("/delay", to: "a")]), clusters: ["a": [upstream.port]])
        let responses = try await Task.detached {
            let client = try HTTPTestClient(port: port)
            // The first response is slow, so the others wait behind it in the proxy.
            try client.send(raw: "GET /delay/50 HTTP/1.1\r\nhost: x\r\n\r\n"
                + "POST /p/two HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
                + "GET /missing HTTP/1.1\r\nhost: x\r\n\r\n"
                + "GET /p/three HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                + "GET /p/four HTTP/1.1\r\nhost: x\r\n\r\n")
            var responses = try (0..<4).map { _ in try client.readResponse() }
            // After `connection: close` nothing more is answered and the connection ends.
            if let extra = try? client.readResponse() { responses.append(extra) }
            return responses
        }.value
        #expect(responses.map(\.status) == [200, 200, 404, 200])
        #expect(responses[0].body.hasPrefix("GET /delay/50\n"))
        #expect(responses[1].body.hasPrefix("POST /p/two\n"))
        #expect(responses[1].body.contains("body-bytes: 3"))
        #expect(responses[3].body.hasPrefix("GET /p/three\n"))
        #expect(responses[3].header("connection") == "close")
        #expect(stat(server, "http.ingress.downstream_rq_total") == 4)
        await server.shutdown()
    }

    @Test func bytesThatAreNotHTTPGetEnvoysBadRequestAfterTheRequestsBeforeThem() async throws {
        let upstream = try HTTPTestUpstream(name: "a")
        defer { upstream.stop() }
        let (server, port) = try await proxy(routes: Self.table([Self.forward("/", to: "a")]), clusters: ["a": [upstream.port]])
        let responses = try await Task.detached {
            let client = try HTTPTestClient(port: port)
            try client.send(raw: "GET /delay/20 HTTP/1.1\r\nhost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
            return try (0..<2).map { _ in try client.readResponse() }
        }.value
        #expect(responses.map(\.status) == [200, 400])
        #expect(responses[1].body == "Bad Request")
        #expect(responses[1].header("connection") == "close")
        #expect(stat(server, "http.ingress.downstream_cx_protocol_error") == 1)
        await server.shutdown()
    }

    @Test func postBodiesArriveWhole() async throws {
        let upstream = try HTTPTestUpstream(name: "sink")
        defer { upstream.stop() }
        let (server, port) = try await proxy(routes: Self.table([Self.forward("/", to: "sink")]), clusters: ["sink": [upstream.port]])
        let body = [UInt8](repeating: 7, count: 3 << 20)
        let response = try await Task.detached { try HTTPTestClient(port: port).request("/upload", method: "POST", body: body) }.value
        #expect(response.status == 200)
        #expect(response.body.contains("body-bytes: \(body.count)"))
        await server.shutdown()
    }
}

/// HTTP/2 on either side of the connection manager.
@Suite(.serialized) struct HTTP2ConnectionManagerTests {
    private func proxy(upstreamPort: Int, upstream: UpstreamHTTPOptions.ProtocolChoice, codec: HTTPConnectionManagerConfig.CodecType = .auto)
        async throws -> (ProxyServer, Int)
    {
        let routes = RouteConfiguration(name: "local", virtualHosts: [VirtualHost(name: "all", domains: ["*"], routes: [
            Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(target: .cluster("b")))),
        ])])
        let config = ProxyConfiguration(
            listeners: [ListenerConfig(
                name: "http", addresses: [ListenerAddress(endpoint: SocketEndpoint("127.0.0.1:0")!)],
                filterChains: [FilterChain(filters: [.httpConnectionManager(
                    HTTPConnectionManagerConfig(statPrefix: "h2", codecType: codec, routes: .inline(routes)))])])],
            clusters: [ClusterConfig(
                name: "b", discovery: .staticEndpoints, connectTimeout: .seconds(1),
                loadAssignment: LoadAssignment(localities: [LocalityEndpoints(
                    endpoints: [Endpoint(address: .ip(SocketEndpoint("127.0.0.1:\(upstreamPort)")!))])]),
                upstreamHTTP: UpstreamHTTPOptions(protocolChoice: upstream))])
        let server = ProxyServer(configuration: config, placement: .proxyNamespace)
        try await server.start()
        return (server, Int(server.hostListenerAddresses[0].addresses[0].port))
    }


    @Test(arguments: [UpstreamHTTPOptions.ProtocolChoice.http1, .http2])
    func concurrentStreamsReachTheUpstream(upstream: UpstreamHTTPOptions.ProtocolChoice) async throws {
        let backend = try HTTPTestUpstream(name: "b", http2: upstream == .http2)
        defer { backend.stop() }
        let (server, port) = try await proxy(upstreamPort: backend.port, upstream: upstream)
        let client = try HTTP2TestClient(port: port)
        defer { client.close() }
        let responses = try await withThrowingTaskGroup(of: HTTPTestClient.Response.self) { group in
            for index in 0..<20 {
                group.addTask { try client.request("/item/\(index)", method: .POST, body: [UInt8](repeating: 1, count: 100_000)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(responses.count == 20)
        #expect(responses.allSatisfy { $0.status == 200 && $0.body.contains("body-bytes: 100000") })
        #expect(stat(server, "http.h2.downstream_cx_http2_total") == 1)
        #expect(stat(server, "http.h2.downstream_rq_2xx") == 20)
        if upstream == .http2 { #expect(stat(server, "cluster.b.upstream_cx_http2_total") == 1) }
        await server.shutdown()
    }

    @Test func grpcRequestsGetGRPCLocalReplies() async throws {
        let gone = try HTTPTestUpstream(name: "gone")
        let deadPort = gone.port
        gone.stop()
        let (server, port) = try await proxy(upstreamPort: deadPort, upstream: .http2)
        let client = try HTTP2TestClient(port: port)
        defer { client.close() }
        let response = try client.request(
            "/pkg.Service/Method", method: .POST, headers: [("content-type", "application/grpc"), ("te", "trailers")],
            body: [0, 0, 0, 0, 0])
        #expect(response.status == 200)
        #expect(response.header("grpc-status") == "14")
        #expect(response.header("grpc-message")?.hasPrefix("upstream connect error") == true)
        await server.shutdown()
    }
}
