import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct RoutingLoadErrorTests {
    typealias F = RoutingFixtures

    private func error(_ hosts: [VirtualHost], configure: (inout RouteConfiguration) -> Void = { _ in }) -> RouteTableError? {
        do {
            _ = try F.table(hosts, configure: configure)
            return nil
        } catch let e as RouteTableError {
            return e
        } catch {
            return nil
        }
    }

    private func routeError(_ route: Route) -> RouteTableError? {
        error([VirtualHost(name: "a", domains: ["a"]), VirtualHost(name: "b", domains: ["*"], routes: [F.route(.prefix("/")), route])])
    }

    @Test func duplicateDomainsAcrossHosts() {
        let e = error([VirtualHost(name: "a", domains: ["x.com"]), VirtualHost(name: "b", domains: ["y.com", "X.COM"])])
        #expect(e?.path == "virtual_hosts[1].domains[1]")
        #expect(e?.message == "Only unique values for domains are permitted. Duplicate entry of domain x.com in route rc")
        #expect(error([VirtualHost(name: "a", domains: ["*.x.com", "*.x.com"])])?.path == "virtual_hosts[0].domains[1]")
        #expect(error([VirtualHost(name: "a", domains: ["x.*"]), VirtualHost(name: "b", domains: ["x.*"])]) != nil)
        #expect(error([VirtualHost(name: "a", domains: ["x.com", "*.x.com", "x.com*", "x.com:80"])]) == nil)
    }

    @Test func singleDefaultHost() {
        let e = error([VirtualHost(name: "a", domains: ["*"]), VirtualHost(name: "b", domains: ["*"])])
        #expect(e?.description == "virtual_hosts[1].domains[0]: Only a single wildcard domain is permitted in route rc")
    }

    @Test func emptyDomains() {
        #expect(error([VirtualHost(name: "a", domains: [])])?.path == "virtual_hosts[0].domains")
    }

    @Test func invalidRegexesNameTheirField() {
        let e = routeError(F.route(.safeRegex("(unclosed")))
        #expect(e?.path == "virtual_hosts[1].routes[1].match.safe_regex")
        #expect(e?.message.hasPrefix("invalid regex") == true)
        let header = routeError(F.route(.prefix("/"), headers: [
            HeaderMatcher(name: "h", rule: .present(true)),
            HeaderMatcher(name: "h", rule: .string(StringMatcher(.regex("a(?=b)")))),
        ]))
        #expect(header?.path == "virtual_hosts[1].routes[1].match.headers[1].string_match.safe_regex")
        let rewrite = routeError(Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(
            target: .cluster("c"), regexRewritePattern: "[", regexRewriteSubstitution: ""))))
        #expect(rewrite?.path == "virtual_hosts[1].routes[1].route.regex_rewrite.pattern")
        let redirect = routeError(Route(match: RouteMatch(path: .prefix("/")), action: .redirect(RedirectAction(
            path: .regex(pattern: "(", substitution: "")))))
        #expect(redirect?.path == "virtual_hosts[1].routes[1].redirect.regex_rewrite.pattern")
    }

    @Test func regexWithIgnoreCaseIsRejected() {
        let e = routeError(F.route(.prefix("/"), query: [
            QueryParameterMatcher(name: "q", matcher: StringMatcher(.regex("a"), ignoreCase: true)),
        ]))
        #expect(e?.path == "virtual_hosts[1].routes[1].match.query_parameters[0].string_match")
        #expect(e?.message == "ignore_case has no effect for safe_regex")
    }

    @Test func onlyOneRewrite() {
        let e = routeError(Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(
            target: .cluster("c"), prefixRewrite: "/x", regexRewritePattern: "a", regexRewriteSubstitution: "b"))))
        #expect(e?.message == "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy")
    }

    @Test func weightedClusterRules() {
        func weighted(_ entries: [WeightedHTTPClusters.Entry]) -> Route {
            Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(target: .weighted(WeightedHTTPClusters(clusters: entries)))))
        }
        #expect(routeError(weighted([.init(name: "a", weight: 0)]))?.message == "Sum of weights in the weighted_cluster must be greater than 0.")
        #expect(routeError(weighted([.init(name: "a", weight: UInt32.max), .init(name: "b", weight: 1)]))?.message.contains("exceeds 4294967295") == true)
        #expect(routeError(weighted([]))?.path == "virtual_hosts[1].routes[1].route.weighted_clusters.clusters")
    }

    @Test func pathSeparatedPrefixShape() {
        #expect(routeError(F.route(.pathSeparatedPrefix("/api/")))?.path == "virtual_hosts[1].routes[1].match.path_separated_prefix")
        #expect(routeError(F.route(.pathSeparatedPrefix("/api?x")))  != nil)
        #expect(routeError(F.route(.pathSeparatedPrefix("/api"))) == nil)
    }

    @Test func headerMutationsMayNotTouchPseudoHeadersOrHost() {
        let e = error([VirtualHost(name: "a", domains: ["*"], headers: HeaderMutations(
            requestHeadersToAdd: [HeaderValueOption(name: "x-ok", value: "1"), HeaderValueOption(name: "Host", value: "h")]))])
        #expect(e?.description == "virtual_hosts[0].request_headers_to_add[1]: :-prefixed or host headers may not be modified")
        let removal = error([VirtualHost(name: "a", domains: ["*"])]) {
            $0.headers = HeaderMutations(requestHeadersToRemove: [":path"])
        }
        #expect(removal?.description == "request_headers_to_remove[0]: :-prefixed or host headers may not be removed")
    }

    @Test func directResponseLimits() {
        let big = String(repeating: "x", count: 4097)
        let e = routeError(Route(match: RouteMatch(path: .prefix("/")), action: .directResponse(status: 200, body: big)))
        #expect(e?.message == "response body size is 4097 bytes; maximum is 4096")
        #expect(routeError(Route(match: RouteMatch(path: .prefix("/")), action: .directResponse(status: 99, body: nil))) != nil)
        #expect(routeError(Route(match: RouteMatch(path: .prefix("/")), action: .redirect(RedirectAction(status: 200)))) != nil)
    }
}
