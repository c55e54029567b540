import NIOHTTP1
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct RoutingMatchTests {
    typealias F = RoutingFixtures

    private func matches(_ route: Route, _ request: HTTPRequestContext, random: UInt64 = 0) throws -> Bool {
        F.cluster(try F.table(routes: [route]).decide(request, random: random)) != nil
    }

    private func matches(_ path: RouteMatch.PathRule, _ requestPath: String, caseSensitive: Bool = true) throws -> Bool {
        try matches(F.route(path, caseSensitive: caseSensitive), F.request(requestPath))
    }

    @Test func prefixIgnoresQueryAndHasNoSegmentBoundary() throws {
        #expect(try matches(.prefix("/api"), "/api"))
        #expect(try matches(.prefix("/api"), "/apiv2/x"))
        #expect(try matches(.prefix("/api"), "/api?x=1"))
        #expect(try !matches(.prefix("/api"), "/ap?i"))
        #expect(try !matches(.prefix("/api"), "/API"))
        #expect(try matches(.prefix(""), "/anything"))
    }

    @Test func pathIsExactWithoutQueryOrFragment() throws {
        #expect(try matches(.path("/a/b"), "/a/b"))
        #expect(try matches(.path("/a/b"), "/a/b?q=1"))
        #expect(try matches(.path("/a/b"), "/a/b#frag"))
        #expect(try !matches(.path("/a/b"), "/a/b/"))
        #expect(try !matches(.path("/a/b"), "/a/bc"))
    }

    @Test func safeRegexMustMatchTheWholePathWithoutQuery() throws {
        #expect(try matches(.safeRegex("/v[0-9]+/.*"), "/v12/items?x=1"))
        #expect(try !matches(.safeRegex("/v[0-9]+"), "/v12/items"))
        #expect(try !matches(.safeRegex("v1"), "/v1"))
        // Leftmost-first alternation still matches the whole input when a later branch does.
        #expect(try matches(.safeRegex("/a|/ab"), "/ab"))
        // Regex matching ignores case_sensitive: false (Envoy does not fold case for regexes).
        #expect(try !matches(.safeRegex("/abc"), "/ABC", caseSensitive: false))
    }

    @Test func pathSeparatedPrefixEndsAtSlashOrEnd() throws {
        #expect(try matches(.pathSeparatedPrefix("/api"), "/api"))
        #expect(try matches(.pathSeparatedPrefix("/api"), "/api/"))
        #expect(try matches(.pathSeparatedPrefix("/api"), "/api/v1"))
        #expect(try matches(.pathSeparatedPrefix("/api"), "/api?x=1"))
        #expect(try matches(.pathSeparatedPrefix("/api"), "/api#top"))
        #expect(try !matches(.pathSeparatedPrefix("/api"), "/apiv1"))
        #expect(try !matches(.pathSeparatedPrefix("/api"), "/ap"))
    }

    @Test func caseInsensitiveMatching() throws {
        #expect(try matches(.prefix("/API"), "/api/x", caseSensitive: false))
        #expect(try matches(.path("/Foo"), "/fOO", caseSensitive: false))
        #expect(try matches(.pathSeparatedPrefix("/Api"), "/aPI/v1", caseSensitive: false))
        #expect(try !matches(.pathSeparatedPrefix("/Api"), "/aPIv1", caseSensitive: false))
        #expect(try !matches(.path("/Foo"), "/fOO"))
    }

    @Test func firstMatchingRouteWins() throws {
        let table = try F.table(routes: [
            F.route(.prefix("/api/v2"), cluster: "v2"), F.route(.prefix("/api"), cluster: "api"),
            F.route(.prefix("/api/v3"), cluster: "never"), F.route(.prefix("/"), cluster: "default"),
        ])
        #expect(F.cluster(table.decide(F.request("/api/v2/x"), random: 0)) == "v2")
        #expect(F.cluster(table.decide(F.request("/api/v3/x"), random: 0)) == "api")
        #expect(F.cluster(table.decide(F.request("/web"), random: 0)) == "default")
    }

    // MARK: header matchers

    private func header(_ matcher: HeaderMatcher, _ headers: [(String, String)]) throws -> Bool {
        try matches(F.route(.prefix("/"), headers: [matcher]), F.request(headers: headers))
    }

    private func string(_ p: StringMatcher.Pattern, ignoreCase: Bool = false, invert: Bool = false,
                        missingAsEmpty: Bool = false) -> HeaderMatcher {
        HeaderMatcher(name: "x-h", rule: .string(StringMatcher(p, ignoreCase: ignoreCase)), invert: invert,
                      treatMissingAsEmpty: missingAsEmpty)
    }

    @Test func stringHeaderMatchers() throws {
        #expect(try header(string(.exact("abc")), [("x-h", "abc")]))
        #expect(try !header(string(.exact("abc")), [("x-h", "ABC")]))
        #expect(try header(string(.exact("abc"), ignoreCase: true), [("X-H", "ABC")]))
        #expect(try header(string(.prefix("ab")), [("x-h", "abc")]))
        #expect(try !header(string(.prefix("AB")), [("x-h", "abc")]))
        #expect(try header(string(.prefix("AB"), ignoreCase: true), [("x-h", "abc")]))
        #expect(try header(string(.suffix("bc")), [("x-h", "abc")]))
        #expect(try header(string(.suffix("BC"), ignoreCase: true), [("x-h", "abc")]))
        #expect(try header(string(.contains("b")), [("x-h", "abc")]))
        #expect(try !header(string(.contains("B")), [("x-h", "abc")]))
        #expect(try header(string(.contains("B"), ignoreCase: true), [("x-h", "abc")]))
        #expect(try header(string(.regex("[a-c]{3}")), [("x-h", "abc")]))
        #expect(try !header(string(.regex("[a-c]{2}")), [("x-h", "abc")]))
    }

    /// Seen with Envoy 1.40 in the differential corpus: a header sent twice matches when either
    /// value does, never as the two values joined.
    @Test func anyValueOfARepeatedHeaderMatches() throws {
        let values = [("x-h", "a"), ("x-h", "b")]
        #expect(try !header(string(.exact("a,b")), values))
        #expect(try header(string(.exact("a")), values))
        #expect(try header(string(.exact("b")), values))
        #expect(try !header(string(.suffix(",b")), values))
        #expect(try header(string(.exact("a,b")), [("x-h", "a,b")]))
        #expect(try !header(string(.exact("c")), values))
    }

    @Test func invertAndMissingHeaders() throws {
        #expect(try !header(string(.exact("abc"), invert: true), [("x-h", "abc")]))
        #expect(try header(string(.exact("abc"), invert: true), [("x-h", "abd")]))
        // A missing header matches no string matcher, inverted or not.
        #expect(try !header(string(.exact("abc")), []))
        #expect(try !header(string(.exact("abc"), invert: true), []))
        // treat_missing_header_as_empty matches the empty string, and then invert applies.
        #expect(try header(string(.exact(""), missingAsEmpty: true), []))
        #expect(try !header(string(.exact("abc"), missingAsEmpty: true), []))
        #expect(try header(string(.exact("abc"), invert: true, missingAsEmpty: true), []))
        #expect(try header(string(.regex(".*"), missingAsEmpty: true), []))
    }

    @Test func presentMatch() throws {
        let present = HeaderMatcher(name: "x-h", rule: .present(true))
        let absent = HeaderMatcher(name: "x-h", rule: .present(false))
        let presentInverted = HeaderMatcher(name: "x-h", rule: .present(true), invert: true)
        let absentInverted = HeaderMatcher(name: "x-h", rule: .present(false), invert: true)
        #expect(try header(present, [("x-h", "")]))
        #expect(try !header(present, []))
        #expect(try header(absent, []))
        #expect(try !header(absent, [("x-h", "1")]))
        #expect(try header(presentInverted, []))
        #expect(try !header(presentInverted, [("x-h", "1")]))
        #expect(try header(absentInverted, [("x-h", "1")]))
        #expect(try !header(absentInverted, []))
    }

    @Test func rangeMatchIsHalfOpenOnIntegers() throws {
        let range = HeaderMatcher(name: "x-h", rule: .range(start: -10, end: 0))
        #expect(try header(range, [("x-h", "-10")]))
        #expect(try header(range, [("x-h", "-1")]))
        #expect(try !header(range, [("x-h", "0")]))
        #expect(try !header(range, [("x-h", "-11")]))
        #expect(try !header(range, [("x-h", "-1.5")]))
        #expect(try !header(range, [("x-h", "abc")]))
        #expect(try !header(range, []))
        #expect(try header(HeaderMatcher(name: "x-h", rule: .range(start: -10, end: 0), invert: true), [("x-h", "5")]))
        #expect(try !header(HeaderMatcher(name: "x-h", rule: .range(start: -10, end: 0), invert: true), []))
    }

    @Test func pseudoHeaderMatchers() throws {
        let method = HeaderMatcher(name: ":method", rule: .string(StringMatcher(.exact("POST"))))
        #expect(try matches(F.route(.prefix("/"), headers: [method]), F.request(method: "POST")))
        #expect(try !matches(F.route(.prefix("/"), headers: [method]), F.request(method: "GET")))
        let authority = HeaderMatcher(name: ":authority", rule: .string(StringMatcher(.suffix(":8080"))))
        #expect(try matches(F.route(.prefix("/"), headers: [authority]), F.request(authority: "a:8080")))
        let path = HeaderMatcher(name: ":path", rule: .string(StringMatcher(.exact("/x?y=1"))))
        #expect(try matches(F.route(.prefix("/"), headers: [path]), F.request("/x?y=1")))
    }

    @Test func allHeaderMatchersMustMatch() throws {
        let route = F.route(.prefix("/"), headers: [
            HeaderMatcher(name: "a", rule: .present(true)), HeaderMatcher(name: "b", rule: .string(StringMatcher(.exact("2")))),
        ])
        #expect(try matches(route, F.request(headers: [("a", "1"), ("b", "2")])))
        #expect(try !matches(route, F.request(headers: [("a", "1"), ("b", "3")])))
        #expect(try !matches(route, F.request(headers: [("b", "2")])))
    }

    // MARK: query parameters

    private func query(_ matcher: QueryParameterMatcher, _ path: String) throws -> Bool {
        try matches(F.route(.prefix("/"), query: [matcher]), F.request(path))
    }

    @Test func queryParameterMatchers() throws {
        let exact = QueryParameterMatcher(name: "debug", matcher: StringMatcher(.exact("1")))
        #expect(try query(exact, "/x?debug=1"))
        #expect(try query(exact, "/x?a=b&debug=1"))
        #expect(try !query(exact, "/x?debug=2"))
        #expect(try !query(exact, "/x"))
        // The first occurrence decides.
        #expect(try !query(exact, "/x?debug=2&debug=1"))
        // Values are not percent-decoded.
        #expect(try !query(QueryParameterMatcher(name: "q", matcher: StringMatcher(.exact("a b"))), "/x?q=a%20b"))
        #expect(try query(QueryParameterMatcher(name: "q", matcher: StringMatcher(.exact("a%20b"))), "/x?q=a%20b"))
        let present = QueryParameterMatcher(name: "flag", presentMatch: true)
        #expect(try query(present, "/x?flag"))
        #expect(try query(present, "/x?flag="))
        #expect(try !query(present, "/x?flags=1"))
        // A parameter without "=" has the empty value.
        #expect(try query(QueryParameterMatcher(name: "flag", matcher: StringMatcher(.exact(""))), "/x?flag"))
        #expect(try query(QueryParameterMatcher(name: "n", matcher: StringMatcher(.prefix("AB"), ignoreCase: true)), "/x?n=abc"))
        #expect(try query(QueryParameterMatcher(name: "n", matcher: StringMatcher(.regex("[0-9]+"))), "/x?n=123"))
        // Envoy keeps "=" inside the value.
        #expect(try query(QueryParameterMatcher(name: "t", matcher: StringMatcher(.exact("a=b"))), "/x?t=a=b"))
    }

    // MARK: gRPC and runtime fraction

    @Test func grpcMatchNeedsGrpcContentType() throws {
        let route = F.route(.prefix("/"), grpc: true)
        #expect(try matches(route, F.request(headers: [("content-type", "application/grpc")])))
        #expect(try matches(route, F.request(headers: [("content-type", "application/grpc+proto")])))
        #expect(try !matches(route, F.request(headers: [("content-type", "application/grpc-web")])))
        #expect(try !matches(route, F.request(headers: [("content-type", "application/json")])))
        #expect(try !matches(route, F.request()))
    }

    @Test func runtimeFractionUsesRandomModuloDenominator() throws {
        let route = F.route(.prefix("/"), fraction: FractionalPercent(numerator: 25, denominator: 100))
        #expect(try matches(route, F.request(), random: 0))
        #expect(try matches(route, F.request(), random: 24))
        #expect(try !matches(route, F.request(), random: 25))
        #expect(try matches(route, F.request(), random: 124))
        #expect(try !matches(route, F.request(), random: 199))
        let perMillion = F.route(.prefix("/"), fraction: FractionalPercent(numerator: 1, denominator: 1_000_000))
        #expect(try matches(perMillion, F.request(), random: 3_000_000))
        #expect(try !matches(perMillion, F.request(), random: 3_000_001))
    }

    @Test func fractionFallsThroughToNextRoute() throws {
        let table = try F.table(routes: [
            F.route(.prefix("/"), cluster: "canary", fraction: FractionalPercent(numerator: 10)),
            F.route(.prefix("/"), cluster: "stable"),
        ])
        #expect(F.cluster(table.decide(F.request(), random: 9)) == "canary")
        #expect(F.cluster(table.decide(F.request(), random: 10)) == "stable")
    }
}
