import NIOHTTP1
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct RoutingHashTests {
    typealias F = RoutingFixtures

    @Test func xxHash64KnownVectors() {
        #expect(XXHash64.hash("") == 0xEF46_DB37_51D8_E999)
        #expect(XXHash64.hash("a") == 0xD24E_C4F1_A98C_6E5B)
        #expect(XXHash64.hash("abc") == 0x44BC_2CF5_AD77_0999)
        #expect(XXHash64.hash("Nobody inspects the spammish repetition") == 0xFBCE_A83C_8A37_8BF1)
        // 42 bytes: the 32-byte stripe loop, an 8-byte tail and a 2-byte tail.
        #expect(XXHash64.hash("0123456789abcdef0123456789abcdef0123456789") == 0xA761_90C3_ACF0_8A1C)
        #expect(XXHash64.hash("10.0.0.1") == 0xED16_CB68_C786_E3D7)
        #expect(XXHash64.hash("foo", seed: XXHash64.hash("bar")) == 0x5C44_1824_061E_14FF)
    }

    private func hash(_ policies: [HashPolicy], _ request: HTTPRequestContext) -> UInt64? {
        RequestHash.compute(policies, for: request)
    }

    @Test func headerHash() {
        let policy = [HashPolicy(source: .header("x-user"))]
        #expect(hash(policy, F.request(headers: [("X-User", "user-42")])) == 0x397E_9D3A_76AF_7C81)
        #expect(hash(policy, F.request()) == nil)
        // Several values are sorted, then hashed as one stream ("barfoo"): {"foo","bar"} == {"bar","foo"}.
        let many = [HashPolicy(source: .header("x-m"))]
        #expect(hash(many, F.request(headers: [("x-m", "foo"), ("x-m", "bar")])) == 0x9843_0081_820E_D765)
        #expect(hash(many, F.request(headers: [("x-m", "bar"), ("x-m", "foo")])) == 0x9843_0081_820E_D765)
    }

    @Test func cookieHash() {
        let policy = [HashPolicy(source: .cookie(name: "session"))]
        #expect(hash(policy, F.request(headers: [("cookie", "a=1; session=abc123; b=2")])) == 0x4F1C_85B3_0AFE_42D3)
        #expect(hash(policy, F.request(headers: [("cookie", "x=1"), ("cookie", "session=\"abc123\"")])) == 0x4F1C_85B3_0AFE_42D3)
        #expect(hash(policy, F.request(headers: [("cookie", "session=")])) == nil)
        #expect(hash(policy, F.request(headers: [("cookie", "sessionid=abc123")])) == nil)
        #expect(hash(policy, F.request()) == nil)
    }

    @Test func sourceIPHash() {
        #expect(hash([HashPolicy(source: .sourceIP)], F.request(remote: "10.0.0.1:5555")) == 0xED16_CB68_C786_E3D7)
        #expect(hash([HashPolicy(source: .sourceIP)], F.request(remote: "[2001:db8::1]:5555")) == 0x26C3_3EF1_C67E_1031)
    }

    @Test func queryParameterHash() {
        let policy = [HashPolicy(source: .queryParameter("v"))]
        #expect(hash(policy, F.request("/x?a=1&v=v1&v=v2")) == 0x7F99_EC72_F864_5BAC)
        #expect(hash(policy, F.request("/x?a=1")) == nil)
    }

    @Test func hashesCombineByRotateAndXor() {
        let request = F.request(headers: [("x-user", "user-42")], remote: "10.0.0.1:1")
        #expect(hash([HashPolicy(source: .header("x-user")), HashPolicy(source: .sourceIP)], request) == 0x9FEB_F11C_2AD8_1AD5)
        // The same rule twice does not cancel out.
        #expect(hash([HashPolicy(source: .header("x-user")), HashPolicy(source: .header("x-user"))], request) == 0x4B83_A74E_9BF1_8583)
        // Policies that yield nothing are skipped.
        #expect(hash([HashPolicy(source: .header("missing")), HashPolicy(source: .sourceIP)], request) == 0xED16_CB68_C786_E3D7)
    }

    @Test func terminalStopsOnceAHashExists() {
        let request = F.request(headers: [("x-user", "user-42")], remote: "10.0.0.1:1")
        #expect(hash([HashPolicy(source: .header("x-user"), terminal: true), HashPolicy(source: .sourceIP)], request)
                == 0x397E_9D3A_76AF_7C81)
        // A terminal policy that produced nothing does not stop the walk.
        #expect(hash([HashPolicy(source: .header("missing"), terminal: true), HashPolicy(source: .sourceIP)], request)
                == 0xED16_CB68_C786_E3D7)
    }

    @Test func forwardPlanComputesItsHash() throws {
        let route = Route(match: RouteMatch(path: .prefix("/")), action: .forward(RouteAction(
            target: .cluster("c"), hashPolicies: [HashPolicy(source: .header("x-user"))])))
        let request = F.request(headers: [("x-user", "user-42")])
        let plan = try #require(F.plan(try F.table(routes: [route]).decide(request, random: 0)))
        #expect(plan.hash(for: request) == 0x397E_9D3A_76AF_7C81)
    }
}
