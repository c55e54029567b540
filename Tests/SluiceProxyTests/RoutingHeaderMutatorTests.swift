import NIOHTTP1
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct RoutingHeaderMutatorTests {
    private func apply(_ add: [HeaderValueOption], remove: [String] = [], to start: [(String, String)],
                       substitute: ((String) -> String)? = nil) -> [String: [String]] {
        var headers = HTTPHeaders(start)
        HeaderMutator.apply(add: add, remove: remove, to: &headers, substitute: substitute)
        var out: [String: [String]] = [:]
        for (name, value) in headers { out[name.lowercased(), default: []].append(value) }
        return out
    }

    @Test func appendIfExistsOrAdd() {
        #expect(apply([HeaderValueOption(name: "x-a", value: "2")], to: [("x-a", "1")]) == ["x-a": ["1", "2"]])
        #expect(apply([HeaderValueOption(name: "x-a", value: "2")], to: []) == ["x-a": ["2"]])
    }

    @Test func addIfAbsent() {
        let option = HeaderValueOption(name: "x-a", value: "2", action: .addIfAbsent)
        #expect(apply([option], to: [("x-a", "1")]) == ["x-a": ["1"]])
        #expect(apply([option], to: []) == ["x-a": ["2"]])
        // Checked against the headers before this level's additions: both are added.
        #expect(apply([option, HeaderValueOption(name: "x-a", value: "3", action: .addIfAbsent)], to: []) == ["x-a": ["2", "3"]])
    }

    @Test func overwriteIfExistsOrAdd() {
        let option = HeaderValueOption(name: "x-a", value: "new", action: .overwriteIfExistsOrAdd)
        #expect(apply([option], to: [("x-a", "1"), ("X-A", "2"), ("b", "b")]) == ["x-a": ["new"], "b": ["b"]])
        #expect(apply([option], to: []) == ["x-a": ["new"]])
    }

    @Test func overwriteIfExists() {
        let option = HeaderValueOption(name: "x-a", value: "new", action: .overwriteIfExists)
        #expect(apply([option], to: [("x-a", "1")]) == ["x-a": ["new"]])
        #expect(apply([option], to: []) == [:])
    }

    @Test func overwritesRunBeforeAppends() {
        let result = apply([
            HeaderValueOption(name: "x-a", value: "appended"),
            HeaderValueOption(name: "x-a", value: "set", action: .overwriteIfExistsOrAdd),
        ], to: [("x-a", "old")])
        #expect(result == ["x-a": ["set", "appended"]])
    }

    @Test func removalsComeFirst() {
        let result = apply([HeaderValueOption(name: "x-a", value: "new")], remove: ["X-A", "x-b"],
                           to: [("x-a", "old"), ("x-b", "b"), ("x-c", "c")])
        #expect(result == ["x-a": ["new"], "x-c": ["c"]])
    }

    @Test func emptyValuesNeedKeepEmptyValue() {
        #expect(apply([HeaderValueOption(name: "x-a", value: "")], to: []) == [:])
        #expect(apply([HeaderValueOption(name: "x-a", value: "", keepEmptyValue: true)], to: []) == ["x-a": [""]])
        // A substitution that yields nothing is skipped too.
        #expect(apply([HeaderValueOption(name: "x-a", value: "%DYNAMIC%")], to: [], substitute: { _ in "" }) == [:])
        #expect(apply([HeaderValueOption(name: "x-a", value: "", action: .overwriteIfExistsOrAdd)], to: [("x-a", "1")])
                == ["x-a": ["1"]])
    }

    @Test func substitutionOnlyForValuesWithPercent() {
        var calls: [String] = []
        let result = apply([
            HeaderValueOption(name: "x-ip", value: "%DOWNSTREAM_REMOTE_ADDRESS%"),
            HeaderValueOption(name: "x-plain", value: "plain"),
        ], to: [], substitute: { calls.append($0); return "10.0.0.1:1234" })
        #expect(calls == ["%DOWNSTREAM_REMOTE_ADDRESS%"])
        #expect(result == ["x-ip": ["10.0.0.1:1234"], "x-plain": ["plain"]])
    }

    @Test func pseudoHeadersAndHostAreNeverTouched() {
        let result = apply([HeaderValueOption(name: "host", value: "evil", action: .overwriteIfExistsOrAdd),
                            HeaderValueOption(name: ":path", value: "/x")],
                           remove: ["Host", ":authority"], to: [("host", "good")])
        #expect(result == ["host": ["good"]])
        #expect(!HeaderMutator.isModifiable("HOST"))
        #expect(!HeaderMutator.isModifiable(":method"))
        #expect(HeaderMutator.isModifiable("x-host"))
    }
}

@Suite struct RoutingAuthorityRewriteTests {
    @Test func appendsOldAuthorityToXForwardedHostOnce() {
        var authority = "front.example.com"
        var headers = HTTPHeaders()
        AuthorityRewrite.apply("backend", authority: &authority, headers: &headers, appendXForwardedHost: true)
        #expect(authority == "backend")
        #expect(headers["x-forwarded-host"] == ["front.example.com"])

        var again = "front.example.com"
        AuthorityRewrite.apply("backend", authority: &again, headers: &headers, appendXForwardedHost: true)
        #expect(headers["x-forwarded-host"] == ["front.example.com"])

        var other = "edge"
        AuthorityRewrite.apply("backend", authority: &other, headers: &headers, appendXForwardedHost: true)
        #expect(headers["x-forwarded-host"] == ["front.example.com,edge"])
    }

    @Test func withoutAppendOnlyTheAuthorityChanges() {
        var authority = "a"
        var headers = HTTPHeaders()
        AuthorityRewrite.apply("b", authority: &authority, headers: &headers, appendXForwardedHost: false)
        #expect(authority == "b")
        #expect(headers.isEmpty)
    }
}
