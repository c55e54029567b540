import NIOHTTP1
import SluiceModel
@testable import SluiceProxy
import Testing

/// Shared builders for the routing tests.
enum RoutingFixtures {
    static func request(
        _ path: String = "/", authority: String = "example.com", method: String = "GET", scheme: String = "http",
        headers: [(String, String)] = [], remote: String = "10.0.0.1:40000"
    ) -> HTTPRequestContext {
        HTTPRequestContext(
            method: method, path: path, authority: authority, scheme: scheme, headers: HTTPHeaders(headers),
            directRemote: SocketEndpoint(remote)!, local: SocketEndpoint("10.0.0.2:80")!)
    }

    static func route(_ path: RouteMatch.PathRule, cluster: String = "c", name: String = "",
                      caseSensitive: Bool = true, headers: [HeaderMatcher] = [],
                      query: [QueryParameterMatcher] = [], grpc: Bool = false,
                      fraction: FractionalPercent? = nil) -> Route {
        Route(name: name, match: RouteMatch(path: path, caseSensitive: caseSensitive, headers: headers,
                                            queryParameters: query, grpc: grpc, fraction: fraction),
              action: .forward(RouteAction(target: .cluster(cluster))))
    }

    static func table(_ hosts: [VirtualHost], configure: (inout RouteConfiguration) -> Void = { _ in }) throws -> CompiledRouteTable {
        var config = RouteConfiguration(name: "rc", virtualHosts: hosts)
        configure(&config)
        return try CompiledRouteTable(config)
    }

    /// A table with one virtual host for `*` and these routes.
    static func table(routes: [Route]) throws -> CompiledRouteTable {
        try table([VirtualHost(name: "vh", domains: ["*"], routes: routes)])
    }

    static func cluster(_ decision: RouteDecision) -> String? {
        if case .forward(let plan) = decision { return plan.clusterName }
        return nil
    }

    static func plan(_ decision: RouteDecision) -> ForwardPlan? {
        if case .forward(let plan) = decision { return plan }
        return nil
    }
}

@Suite struct RoutingVirtualHostTests {
    typealias F = RoutingFixtures

    private func hosts(_ domains: [[String]]) throws -> CompiledRouteTable {
        try F.table(domains.enumerated().map { i, d in
            VirtualHost(name: "vh\(i)", domains: d, routes: [F.route(.prefix("/"), cluster: "c\(i)")])
        })
    }

    private func chosen(_ table: CompiledRouteTable, _ authority: String) -> String? {
        switch table.decide(F.request(authority: authority), random: 0) {
        case .forward(let plan): return plan.virtualHostName
        case .noRoute(let host): return host
        default: return nil
        }
    }

    @Test func exactBeatsSuffixBeatsPrefixBeatsDefault() throws {
        let table = try hosts([["*"], ["foo.*"], ["*.example.com"], ["api.example.com"]])
        #expect(chosen(table, "api.example.com") == "vh3")
        #expect(chosen(table, "web.example.com") == "vh2")
        #expect(chosen(table, "foo.example.com") == "vh2")  // suffix wildcards are tried before prefix ones
        #expect(chosen(table, "foo.bar") == "vh1")
        #expect(chosen(table, "other.org") == "vh0")
    }

    @Test func longestSuffixWildcardWins() throws {
        let table = try hosts([["*.baz.com"], ["*-bar.baz.com"], ["*az.com"]])
        #expect(chosen(table, "foo-bar.baz.com") == "vh1")
        #expect(chosen(table, "foo.baz.com") == "vh0")
        #expect(chosen(table, "quaz.com") == "vh2")
        #expect(chosen(table, "quiz.com") == nil)
    }

    @Test func wildcardMustMatchAtLeastOneCharacter() throws {
        let table = try hosts([["*.foo.com"], ["bar*"], ["*"]])
        #expect(chosen(table, ".foo.com") == "vh2")
        #expect(chosen(table, "x.foo.com") == "vh0")
        #expect(chosen(table, "bar") == "vh2")
        #expect(chosen(table, "barn") == "vh1")
    }

    @Test func longestPrefixWildcardWins() throws {
        let table = try hosts([["api.*"], ["api.v2.*"]])
        #expect(chosen(table, "api.v2.example.com") == "vh1")
        #expect(chosen(table, "api.v1.example.com") == "vh0")
        #expect(chosen(table, "web.example.com") == nil)  // no default host: no route
    }

    @Test func matchingIsCaseInsensitive() throws {
        let table = try hosts([["API.Example.COM"], ["*.Example.com"]])
        #expect(chosen(table, "api.example.com") == "vh0")
        #expect(chosen(table, "Api.EXAMPLE.com") == "vh0")
        #expect(chosen(table, "WWW.EXAMPLE.COM") == "vh1")
    }

    @Test func portIsPartOfTheHostByDefault() throws {
        let table = try hosts([["example.com"], ["example.com:8080"], ["*"]])
        #expect(chosen(table, "example.com:8080") == "vh1")
        #expect(chosen(table, "example.com") == "vh0")
        // No fallback to the port-less domain: Envoy compares the whole authority.
        #expect(chosen(table, "example.com:9090") == "vh2")
    }

    @Test func suffixWildcardDoesNotMatchAuthorityWithPort() throws {
        let table = try hosts([["*.example.com"], ["*.example.com:80"], ["www.*"]])
        #expect(chosen(table, "a.example.com:80") == "vh1")
        #expect(chosen(table, "a.example.com:81") == nil)
        #expect(chosen(table, "www.example.com:81") == "vh2")  // prefix wildcard covers the port
    }

    @Test func ignorePortInHostMatchingStripsThePort() throws {
        let table = try F.table([
            VirtualHost(name: "plain", domains: ["example.com"], routes: [F.route(.prefix("/"))]),
            VirtualHost(name: "v6", domains: ["[::1]"], routes: [F.route(.prefix("/"))]),
        ]) { $0.ignorePortInHostMatching = true }
        #expect(table.virtualHostIndex(forAuthority: "example.com:8080") == 0)
        #expect(table.virtualHostIndex(forAuthority: "[::1]:443") == 1)
        #expect(table.virtualHostIndex(forAuthority: "[::1]") == 1)
    }

    @Test func onlyDefaultHostMatchesAnyAuthority() throws {
        let table = try hosts([["*"]])
        #expect(chosen(table, "") == "vh0")
        #expect(chosen(table, "anything:1234") == "vh0")
    }

    @Test func noMatchingRouteInChosenHostIsNoRoute() throws {
        let table = try F.table([VirtualHost(name: "vh", domains: ["*"], routes: [F.route(.prefix("/api"))])])
        guard case .noRoute(let host) = table.decide(F.request("/web"), random: 0) else {
            Issue.record("expected no route"); return
        }
        #expect(host == "vh")
    }
}
