import NIOHTTP1
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct RoutingActionTests {
    typealias F = RoutingFixtures

    private func forwardTable(_ match: RouteMatch.PathRule, _ action: RouteAction, caseSensitive: Bool = true) throws -> CompiledRouteTable {
        try F.table(routes: [Route(match: RouteMatch(path: match, caseSensitive: caseSensitive), action: .forward(action))])
    }

    // MARK: weighted clusters

    private let weighted = WeightedHTTPClusters(clusters: [
        .init(name: "a", weight: 10), .init(name: "b", weight: 20), .init(name: "c", weight: 70),
    ], randomValueHeader: "x-rv")

    @Test func weightedPickUsesRandomModuloTotalOverCumulativeIntervals() throws {
        let table = try forwardTable(.prefix("/"), RouteAction(target: .weighted(weighted)))
        let expected: [(UInt64, String)] = [
            (0, "a"), (9, "a"), (10, "b"), (29, "b"), (30, "c"), (99, "c"), (100, "a"), (1_234_567, "c"), (UInt64.max, "b"),
        ]
        for (random, cluster) in expected {
            #expect(F.cluster(table.decide(F.request(), random: random)) == cluster, "random \(random)")
        }
    }

    @Test func weightedPickHonoursRandomValueHeader() throws {
        let table = try forwardTable(.prefix("/"), RouteAction(target: .weighted(weighted)))
        #expect(F.cluster(table.decide(F.request(headers: [("x-rv", "15")]), random: 0)) == "b")
        #expect(F.cluster(table.decide(F.request(headers: [("x-rv", "135")]), random: 0)) == "c")
        // Not a number, or several values: the stream's random value is used instead.
        #expect(F.cluster(table.decide(F.request(headers: [("x-rv", "abc")]), random: 12)) == "b")
        #expect(F.cluster(table.decide(F.request(headers: [("x-rv", "15"), ("x-rv", "16")]), random: 0)) == "a")
        #expect(F.cluster(table.decide(F.request(headers: [("x-rv", "-5")]), random: 0)) == "a")
    }

    @Test func zeroWeightEntriesAreNeverPicked() throws {
        let table = try forwardTable(.prefix("/"), RouteAction(target: .weighted(WeightedHTTPClusters(clusters: [
            .init(name: "off", weight: 0), .init(name: "on", weight: 3),
        ]))))
        for random in UInt64(0)..<6 { #expect(F.cluster(table.decide(F.request(), random: random)) == "on") }
    }

    // MARK: cluster_header

    @Test func clusterHeaderUsesFirstValueAndEmptyWhenMissing() throws {
        let table = try forwardTable(.prefix("/"), RouteAction(target: .clusterHeader("x-cluster")))
        #expect(F.cluster(table.decide(F.request(headers: [("x-cluster", "blue")]), random: 0)) == "blue")
        #expect(F.cluster(table.decide(F.request(headers: [("X-Cluster", "a"), ("x-cluster", "b")]), random: 0)) == "a")
        #expect(F.cluster(table.decide(F.request(), random: 0)) == "")
        #expect(F.plan(table.decide(F.request(), random: 0))?.action.clusterNotFoundStatus == 503)
    }

    // MARK: path rewrites

    private func rewritten(_ match: RouteMatch.PathRule, prefix: String? = nil, regex: (String, String)? = nil,
                           _ path: String, caseSensitive: Bool = true) throws -> String? {
        let action = RouteAction(target: .cluster("c"), prefixRewrite: prefix, regexRewritePattern: regex?.0,
                                 regexRewriteSubstitution: regex?.1 ?? "")
        let table = try forwardTable(match, action, caseSensitive: caseSensitive)
        return F.plan(table.decide(F.request(path), random: 0))?.rewrittenPath
    }

    @Test func prefixRewriteReplacesExactlyTheMatchedPrefix() throws {
        #expect(try rewritten(.prefix("/api/"), prefix: "/", "/api/v1/x?y=1") == "/v1/x?y=1")
        // No "/" boundary handling: "/api" → "/" on "/api/v1" leaves a double slash.
        #expect(try rewritten(.prefix("/api"), prefix: "/", "/api/v1") == "//v1")
        #expect(try rewritten(.prefix("/api"), prefix: "/svc", "/apiv1?q") == "/svcv1?q")
        #expect(try rewritten(.prefix("/API"), prefix: "/x", "/api/foo", caseSensitive: false) == "/x/foo")
        #expect(try rewritten(.path("/old"), prefix: "/new", "/old?a=1") == "/new?a=1")
        #expect(try rewritten(.pathSeparatedPrefix("/api"), prefix: "/svc", "/api/v1?q") == "/svc/v1?q")
        // A regex route's "matched path" is the whole path without the query.
        #expect(try rewritten(.safeRegex("/v[0-9]+/.*"), prefix: "/x", "/v1/abc?q") == "/x?q")
        #expect(try rewritten(.prefix("/"), "/same") == nil)
    }

    @Test func regexRewriteSubstitutesGroupsAndKeepsQuery() throws {
        #expect(try rewritten(.prefix("/"), regex: ("^/service/([^/]+)(/.*)$", "\\2/instance/\\1"),
                              "/service/foo/v1/api?x=1") == "/v1/api/instance/foo?x=1")
        #expect(try rewritten(.prefix("/"), regex: ("one", "two"), "/xxx/one/yyy/one/zzz") == "/xxx/two/yyy/two/zzz")
        #expect(try rewritten(.prefix("/"), regex: ("/(a+)", "[\\0|\\1]"), "/aa/b/a") == "[/aa|aa]/b[/a|a]")
        #expect(try rewritten(.prefix("/"), regex: ("x", "\\\\"), "/x") == "/\\")
        // No match: the path is unchanged, but a rewrite was configured so it is still reported.
        #expect(try rewritten(.prefix("/"), regex: ("zzz", "y"), "/abc?zzz") == "/abc?zzz")
    }

    // MARK: host rewrite

    @Test func hostRewrites() throws {
        let literal = try forwardTable(.prefix("/"), RouteAction(target: .cluster("c"), hostRewrite: .literal("up.internal")))
        #expect(F.plan(literal.decide(F.request(), random: 0))?.hostRewrite == .set("up.internal"))

        let header = try forwardTable(.prefix("/"), RouteAction(target: .cluster("c"), hostRewrite: .header("x-host")))
        let plan = try #require(F.plan(header.decide(F.request(), random: 0)))
        #expect(plan.hostRewrite == .fromHeader("x-host"))
        #expect(plan.rewrittenHost(after: HTTPHeaders([("X-Host", "h1"), ("x-host", "h2")])) == "h1")
        #expect(plan.rewrittenHost(after: HTTPHeaders([("x-host", "")])) == nil)
        #expect(plan.rewrittenHost(after: HTTPHeaders()) == nil)

        let regex = try forwardTable(.prefix("/"), RouteAction(
            target: .cluster("c"), hostRewrite: .pathRegex(pattern: "^/.+/(.+)$", substitution: "\\1")))
        #expect(F.plan(regex.decide(F.request("/xxx/yyy/envoyproxy.io?x=1"), random: 0))?.hostRewrite == .set("envoyproxy.io"))

        let auto = try forwardTable(.prefix("/"), RouteAction(target: .cluster("c"), hostRewrite: .autoHost))
        #expect(F.plan(auto.decide(F.request(), random: 0))?.hostRewrite == .autoHost)
    }

    // MARK: redirects

    private func location(_ redirect: RedirectAction, match: RouteMatch.PathRule = .prefix("/"), path: String = "/a?b=1",
                          authority: String = "example.com", scheme: String = "http",
                          headers: [(String, String)] = []) throws -> String? {
        let table = try F.table(routes: [Route(match: RouteMatch(path: match), action: .redirect(redirect))])
        guard case .redirect(_, let location, _) = table.decide(
            F.request(path, authority: authority, scheme: scheme, headers: headers), random: 0) else { return nil }
        return location
    }

    @Test func schemeRedirects() throws {
        #expect(try location(RedirectAction(scheme: "https")) == "https://example.com/a?b=1")
        // The request's default port for its x-forwarded-proto scheme goes when the scheme changes.
        #expect(try location(RedirectAction(scheme: "https"), authority: "example.com:80",
                             headers: [("x-forwarded-proto", "http")]) == "https://example.com/a?b=1")
        #expect(try location(RedirectAction(scheme: "https"), authority: "example.com:8080",
                             headers: [("x-forwarded-proto", "http")]) == "https://example.com:8080/a?b=1")
        // Same scheme: the default port stays.
        #expect(try location(RedirectAction(host: nil, path: .path("/z")), authority: "example.com:80",
                             headers: [("x-forwarded-proto", "http")]) == "http://example.com:80/z?b=1")
        #expect(try location(RedirectAction(scheme: "http"), authority: "example.com:443", scheme: "https",
                             headers: [("x-forwarded-proto", "https")]) == "http://example.com/a?b=1")
        #expect(try location(RedirectAction(scheme: "https"), authority: "[::1]:80",
                             headers: [("x-forwarded-proto", "http")]) == "https://[::1]/a?b=1")
    }

    @Test func hostAndPortRedirects() throws {
        #expect(try location(RedirectAction(host: "new.com")) == "http://new.com/a?b=1")
        #expect(try location(RedirectAction(host: "new.com", port: 8443)) == "http://new.com:8443/a?b=1")
        #expect(try location(RedirectAction(port: 9090), authority: "example.com:8080") == "http://example.com:9090/a?b=1")
        #expect(try location(RedirectAction(port: 443, path: .path("/p")), authority: "example.com") == "http://example.com:443/p?b=1")
    }

    @Test func pathRedirectsAndQueries() throws {
        #expect(try location(RedirectAction(path: .path("/new"))) == "http://example.com/new?b=1")
        #expect(try location(RedirectAction(path: .path("/new"), stripQuery: true)) == "http://example.com/new")
        #expect(try location(RedirectAction(path: .path("/new?x=y"), stripQuery: true)) == "http://example.com/new?x=y")
        #expect(try location(RedirectAction(path: .path("new"))) == "http://example.com/new?b=1")
        #expect(try location(RedirectAction(host: "h", stripQuery: true)) == "http://h/a")
    }

    @Test func prefixAndRegexRedirects() throws {
        #expect(try location(RedirectAction(path: .prefix("/v2/")), match: .prefix("/v1/"), path: "/v1/items?x=1")
                == "http://example.com/v2/items?x=1")
        #expect(try location(RedirectAction(path: .prefix("/v2/"), stripQuery: true), match: .prefix("/v1/"), path: "/v1/items?x=1")
                == "http://example.com/v2/items")
        #expect(try location(RedirectAction(path: .regex(pattern: "^/old/(.*)$", substitution: "/new/\\1")),
                             path: "/old/a/b?q=1") == "http://example.com/new/a/b?q=1")
    }

    @Test func redirectStatusAndResponseHeaders() throws {
        let route = Route(name: "r", match: RouteMatch(path: .prefix("/")),
                          action: .redirect(RedirectAction(host: "h", status: 302)),
                          headers: HeaderMutations(responseHeadersToAdd: [HeaderValueOption(name: "x-r", value: "1")]))
        let table = try F.table([VirtualHost(name: "vh", domains: ["*"], routes: [route])])
        guard case .redirect(let status, let location, let matched) = table.decide(F.request("/p"), random: 0) else {
            Issue.record("expected redirect"); return
        }
        #expect(status == 302)
        #expect(location == "http://h/p")
        #expect(matched.routeName == "r" && matched.virtualHostName == "vh")
        #expect(matched.responseHeaderMutations == [HeaderMutationStep(add: [HeaderValueOption(name: "x-r", value: "1")], remove: [])])
    }

    // MARK: direct response and non-forwarding

    @Test func directResponses() throws {
        func decide(_ status: Int, _ body: String?) throws -> RouteDecision {
            try F.table(routes: [Route(match: RouteMatch(path: .prefix("/")), action: .directResponse(status: status, body: body))])
                .decide(F.request("/a?b=1", authority: "example.com:8080"), random: 0)
        }
        guard case .directResponse(200, "ok", nil, _) = try decide(200, "ok") else { Issue.record("200"); return }
        guard case .directResponse(301, nil, let location?, _) = try decide(301, nil) else { Issue.record("301"); return }
        #expect(location == "http://example.com:8080/a?b=1")
        guard case .directResponse(201, _, .some, _) = try decide(201, "made") else { Issue.record("201"); return }
        guard case .directResponse(404, _, nil, _) = try decide(404, nil) else { Issue.record("404"); return }
    }

    @Test func nonForwardingActionIsNoRoute() throws {
        let table = try F.table(routes: [Route(match: RouteMatch(path: .prefix("/")), action: .nonForwarding)])
        guard case .noRoute(let host) = table.decide(F.request(), random: 0) else { Issue.record("expected noRoute"); return }
        #expect(host == "vh")
    }

    @Test func mirrorsAreSampledWithTheStreamRandomValue() throws {
        let table = try forwardTable(.prefix("/"), RouteAction(target: .cluster("c"), mirrors: [
            RequestMirrorPolicy(cluster: "always"),
            RequestMirrorPolicy(cluster: "tenth", fraction: FractionalPercent(numerator: 1_000, denominator: 10_000)),
        ]))
        #expect(F.plan(table.decide(F.request(), random: 999))?.mirrors.map(\.cluster) == ["always", "tenth"])
        #expect(F.plan(table.decide(F.request(), random: 1_000))?.mirrors.map(\.cluster) == ["always"])
        #expect(F.plan(table.decide(F.request(), random: 10_500))?.mirrors.map(\.cluster) == ["always", "tenth"])
    }

    // MARK: header mutation order, overrides, policies

    private func levelTable(mostSpecificWins: Bool) throws -> CompiledRouteTable {
        func set(_ v: String) -> HeaderMutations {
            HeaderMutations(requestHeadersToAdd: [HeaderValueOption(name: "x-level", value: v, action: .overwriteIfExistsOrAdd)],
                            responseHeadersToAdd: [HeaderValueOption(name: "x-level", value: v, action: .overwriteIfExistsOrAdd)])
        }
        let entry = WeightedHTTPClusters.Entry(name: "c", weight: 1, headers: set("cluster"))
        let route = Route(match: RouteMatch(path: .prefix("/")),
                          action: .forward(RouteAction(target: .weighted(WeightedHTTPClusters(clusters: [entry])))),
                          headers: set("route"))
        return try F.table([VirtualHost(name: "vh", domains: ["*"], routes: [route], headers: set("vhost"))]) {
            $0.headers = set("config")
            $0.mostSpecificHeaderMutationsWins = mostSpecificWins
        }
    }

    @Test func headerMutationLevelsApplyInEnvoysOrder() throws {
        let plan = try #require(F.plan(try levelTable(mostSpecificWins: false).decide(F.request(), random: 0)))
        #expect(plan.requestHeaderMutations.map { $0.add[0].value } == ["cluster", "route", "vhost", "config"])
        var headers = HTTPHeaders()
        HeaderMutator.apply(plan.requestHeaderMutations, to: &headers)
        #expect(headers["x-level"] == ["config"])
        #expect(plan.responseHeaderMutations.map { $0.add[0].value } == ["cluster", "route", "vhost", "config"])

        let specific = try #require(F.plan(try levelTable(mostSpecificWins: true).decide(F.request(), random: 0)))
        #expect(specific.requestHeaderMutations.map { $0.add[0].value } == ["cluster", "config", "vhost", "route"])
        var headers2 = HTTPHeaders()
        HeaderMutator.apply(specific.requestHeaderMutations, to: &headers2)
        #expect(headers2["x-level"] == ["route"])
    }

    @Test func filterOverridesPreferMostSpecificLevel() throws {
        let entry = WeightedHTTPClusters.Entry(name: "c", weight: 1, filterOverrides: ["envoy.filters.http.fault": .disabled])
        let route = Route(match: RouteMatch(path: .prefix("/")),
                          action: .forward(RouteAction(target: .weighted(WeightedHTTPClusters(clusters: [entry])))),
                          filterOverrides: ["envoy.filters.http.rbac": .disabled, "envoy.filters.http.fault": .rbac(nil)])
        let host = VirtualHost(name: "vh", domains: ["*"], routes: [route],
                               filterOverrides: ["envoy.filters.http.rbac": .rbac(nil), "envoy.filters.http.cors": .disabled])
        let plan = try #require(F.plan(try F.table([host]).decide(F.request(), random: 0)))
        #expect(plan.filterOverrides == [
            "envoy.filters.http.fault": .disabled, "envoy.filters.http.rbac": .disabled, "envoy.filters.http.cors": .disabled,
        ])
    }

    @Test func retryAndHashPoliciesFallBackToVirtualHost() throws {
        let hostRetry = RetryPolicy(retryOn: [.fiveXX], numRetries: 3)
        let routeRetry = RetryPolicy(retryOn: [.reset], numRetries: 1)
        let hostHash = [HashPolicy(source: .sourceIP)]
        let routes = [
            Route(match: RouteMatch(path: .prefix("/own")), action: .forward(RouteAction(
                target: .cluster("c"), retryPolicy: routeRetry, hashPolicies: [HashPolicy(source: .header("x-u"))]))),
            Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(target: .cluster("c")))),
        ]
        let table = try F.table([VirtualHost(name: "vh", domains: ["*"], routes: routes, retryPolicy: hostRetry, hashPolicies: hostHash)])
        let own = try #require(F.plan(table.decide(F.request("/own"), random: 0)))
        #expect(own.retryPolicy == routeRetry)
        #expect(own.hashPolicies == [HashPolicy(source: .header("x-u"))])
        let inherited = try #require(F.plan(table.decide(F.request("/x"), random: 0)))
        #expect(inherited.retryPolicy == hostRetry)
        #expect(inherited.hashPolicies == hostHash)
        #expect(inherited.virtualHostName == "vh")
    }
}
