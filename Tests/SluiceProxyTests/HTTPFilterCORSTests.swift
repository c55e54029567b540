import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct HTTPFilterCORSTests {
    private let stats = StatsStore()
    private var filter: CORSFilter { CORSFilter(hcmStatPrefix: "ingress_http", stats: stats) }
    private func count(_ leaf: String) -> UInt64 { stats.counter(.http("ingress_http", leaf)).value }

    private let policy = CORSPolicy(
        allowOrigins: [StringMatcher(.exact("https://app.example.com")), StringMatcher(.suffix(".trusted.io"))],
        allowMethods: "GET, POST", allowHeaders: "content-type, x-token", exposeHeaders: "x-trace",
        maxAge: "600", allowCredentials: true)

    private func preflight(origin: String, extra: [(String, String)] = []) -> HTTPRequestContext {
        FilterTestRequest.make(method: "OPTIONS", path: "/api",
                               headers: [("origin", origin), ("access-control-request-method", "POST")] + extra)
    }

    @Test func preflightIsAnsweredLocally() {
        var random = ScriptedRandom([])
        let decision = filter.decodeHeaders(preflight(origin: "https://app.example.com"), policies: [policy], random: &random)
        #expect(decision == .respond(status: 200, headers: [
            .init("access-control-allow-origin", "https://app.example.com"),
            .init("access-control-allow-credentials", "true"),
            .init("access-control-allow-methods", "GET, POST"),
            .init("access-control-allow-headers", "content-type, x-token"),
            .init("access-control-max-age", "600"),
            .init("access-control-expose-headers", "x-trace"),
        ]))
        #expect(count("cors.origin_valid") == 1)
    }

    @Test func wildcardMethodsAndHeadersEchoTheRequest() {
        let wildcard = CORSPolicy(allowOrigins: [StringMatcher(.exact("*"))], allowMethods: "*", allowHeaders: "*",
                                  allowPrivateNetworkAccess: true)
        var random = ScriptedRandom([])
        let decision = filter.decodeHeaders(
            preflight(origin: "https://any.site", extra: [("access-control-request-headers", "x-a"),
                                                          ("access-control-request-private-network", "true")]),
            policies: [wildcard], random: &random)
        #expect(decision == .respond(status: 200, headers: [
            .init("access-control-allow-origin", "https://any.site"),
            .init("access-control-allow-methods", "POST"),
            .init("access-control-allow-headers", "x-a"),
            .init("access-control-allow-private-network", "true"),
        ]))
    }

    @Test func nonMatchingPreflightIsForwardedOrAnsweredBare() {
        var random = ScriptedRandom([])
        #expect(filter.decodeHeaders(preflight(origin: "https://evil.com"), policies: [policy], random: &random)
            == .proceed(responseHeaders: []))
        #expect(count("cors.origin_invalid") == 1)
        var strict = policy
        strict.forwardNotMatchingPreflights = false
        #expect(filter.decodeHeaders(preflight(origin: "https://evil.com"), policies: [strict], random: &random)
            == .respond(status: 200, headers: [
                .init("access-control-allow-credentials", "true"),
                .init("access-control-allow-methods", "GET, POST"),
                .init("access-control-allow-headers", "content-type, x-token"),
                .init("access-control-max-age", "600"),
            ]))
    }

    @Test func simpleRequestGetsOriginOnTheResponse() {
        var random = ScriptedRandom([])
        let request = FilterTestRequest.make(headers: [("origin", "https://a.trusted.io")])
        #expect(filter.decodeHeaders(request, policies: [policy], random: &random) == .proceed(responseHeaders: [
            .init("access-control-allow-origin", "https://a.trusted.io"),
            .init("access-control-allow-credentials", "true"),
            .init("access-control-expose-headers", "x-trace"),
        ]))
        let invalid = FilterTestRequest.make(headers: [("origin", "https://trusted.io.evil")])
        #expect(filter.decodeHeaders(invalid, policies: [policy], random: &random) == .proceed(responseHeaders: []))
        // No origin: not CORS, nothing counted.
        #expect(filter.decodeHeaders(FilterTestRequest.make(), policies: [policy], random: &random) == .proceed(responseHeaders: []))
        #expect(count("cors.origin_valid") == 1)
        #expect(count("cors.origin_invalid") == 1)
    }

    @Test func routePolicyFieldsWinOverVirtualHostOnes() {
        let route = CORSPolicy(allowOrigins: [StringMatcher(.exact("https://route.example"))], maxAge: "10")
        let virtualHost = CORSPolicy(allowOrigins: [StringMatcher(.exact("https://vh.example"))], allowMethods: "PUT", maxAge: "99")
        var random = ScriptedRandom([])
        let decision = filter.decodeHeaders(preflight(origin: "https://route.example"), policies: [route, virtualHost],
                                            random: &random)
        #expect(decision == .respond(status: 200, headers: [
            .init("access-control-allow-origin", "https://route.example"),
            .init("access-control-allow-methods", "PUT"),
            .init("access-control-max-age", "10"),
        ]))
    }

    @Test func shadowModeCountsButChangesNothing() {
        let shadow = CORSPolicy(allowOrigins: [StringMatcher(.exact("https://app.example.com"))], filterEnabled: .none,
                                shadowEnabled: .all)
        var random = ScriptedRandom([])
        #expect(filter.decodeHeaders(preflight(origin: "https://app.example.com"), policies: [shadow], random: &random)
            == .proceed(responseHeaders: []))
        #expect(count("cors.origin_valid") == 1)
        let off = CORSPolicy(allowOrigins: [StringMatcher(.exact("https://app.example.com"))], filterEnabled: .none)
        #expect(filter.decodeHeaders(preflight(origin: "https://app.example.com"), policies: [off], random: &random)
            == .proceed(responseHeaders: []))
        #expect(count("cors.origin_valid") == 1)
    }
}
