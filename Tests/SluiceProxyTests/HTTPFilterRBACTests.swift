import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct HTTPFilterRBACTests {
    private let stats = StatsStore()
    private let hcm = "inbound_0.0.0.0_8080"

    private func count(_ leaf: String) -> UInt64 { stats.counter(.http(hcm, leaf)).value }

    private func method(_ name: String) -> RBACPermission {
        .header(HeaderMatcher(name: ":method", rule: .string(StringMatcher(.exact(name)))))
    }

    /// The shape Istio generates for an ALLOW AuthorizationPolicy (see the sidecar config dump in
    /// shared/conformance): per rule, and(or(method), or(path)) permissions and and(or(peer principal)) principals.
    private var istioHTTPBinPolicy: RBACPolicy {
        RBACPolicy(
            permissions: [
                .and([.or([method("GET")]), .or([.urlPath(StringMatcher(.prefix("/info")))])]),
                .and([.or([method("POST")]), .or([.urlPath(StringMatcher(.exact("/data")))])]),
            ],
            principals: [
                .and([.or([.filterState(key: "io.istio.peer_principal",
                                        matcher: StringMatcher(.exact("spiffe://cluster.local/ns/default/sa/sleep")))])]),
                .and([.or([.filterState(key: "io.istio.peer_principal", matcher: StringMatcher(.regex(".*/ns/test/.*")))])]),
            ])
    }

    @Test func istioAllowPolicy() throws {
        let filter = try RBACFilter(
            config: RBACFilterConfig(rules: RBACRules(action: .allow, policies: ["ns[default]-policy[httpbin]-rule[0]": istioHTTPBinPolicy])),
            hcmStatPrefix: hcm, stats: stats)
        let sleep = RBACConnectionInfo(peerPrincipal: "spiffe://cluster.local/ns/default/sa/sleep",
                                       filterState: ["io.istio.peer_principal": "spiffe://cluster.local/ns/default/sa/sleep"])
        let allowed = filter.decodeHeaders(FilterTestRequest.make(path: "/info/x?verbose=1"), connection: sleep)
        #expect(!allowed.isDenied)
        #expect(allowed.effectivePolicy == "ns[default]-policy[httpbin]-rule[0]")

        // url_path ignores the query: "/data?x" is exactly "/data".
        #expect(!filter.decodeHeaders(FilterTestRequest.make(method: "POST", path: "/data?x=1"), connection: sleep).isDenied)
        let testNamespace = RBACConnectionInfo(filterState: ["io.istio.peer_principal": "spiffe://cluster.local/ns/test/sa/x"])
        #expect(!filter.decodeHeaders(FilterTestRequest.make(path: "/info"), connection: testNamespace).isDenied)

        // Wrong method for the path.
        let wrongMethod = filter.decodeHeaders(FilterTestRequest.make(method: "POST", path: "/info"), connection: sleep)
        #expect(wrongMethod.localReply == FilterLocalReply(status: 403, body: "RBAC: access denied",
                                                           details: "rbac_access_denied_matched_policy[none]"))
        // Plain text: no peer principal, denied.
        #expect(filter.decodeHeaders(FilterTestRequest.make(path: "/info")).isDenied)
        #expect(count("rbac.allowed") == 3)
        #expect(count("rbac.denied") == 2)
    }

    @Test func denyActionWithNestedNotAndAnd() throws {
        // Deny everything to /admin except from 10.1.0.0/16 on port 8080.
        let policy = RBACPolicy(
            permissions: [.and([.urlPath(StringMatcher(.prefix("/admin"))), .destinationPort(8080)])],
            principals: [.not(.or([.remoteIP(CIDRRange("10.1.0.0/16")!), .directRemoteIP(CIDRRange("192.168.0.0/24")!)]))])
        let filter = try RBACFilter(config: RBACFilterConfig(rules: RBACRules(action: .deny, policies: ["deny admin": policy])),
                                    hcmStatPrefix: hcm, stats: stats)
        let denied = filter.decodeHeaders(FilterTestRequest.make(path: "/admin/users", remote: "10.2.0.1:1000"))
        #expect(denied.localReply?.status == 403)
        // Whitespace in the policy name becomes `_` in the details.
        #expect(denied.localReply?.details == "rbac_access_denied_matched_policy[deny_admin]")
        #expect(!filter.decodeHeaders(FilterTestRequest.make(path: "/admin", remote: "10.1.3.4:1000")).isDenied)
        // x-forwarded-for processing made remote differ from the direct peer.
        #expect(!filter.decodeHeaders(FilterTestRequest.make(path: "/admin", remote: "8.8.8.8:1",
                                                             directRemote: "192.168.0.7:5")).isDenied)
        #expect(!filter.decodeHeaders(FilterTestRequest.make(path: "/admin", local: "10.0.0.9:9090")).isDenied)
        #expect(!filter.decodeHeaders(FilterTestRequest.make(path: "/public")).isDenied)
    }

    @Test func policiesAreEvaluatedInNameOrder() throws {
        let any = RBACPolicy(permissions: [.any], principals: [.any])
        let filter = try RBACFilter(config: RBACFilterConfig(rules: RBACRules(action: .allow, policies: ["b": any, "a": any, "C": any])),
                                    hcmStatPrefix: hcm, stats: stats)
        // Byte order: "C" (0x43) sorts before "a".
        #expect(filter.decodeHeaders(FilterTestRequest.make()).effectivePolicy == "C")
    }

    @Test func logActionNeverDenies() throws {
        let policy = RBACPolicy(permissions: [method("DELETE")], principals: [.any])
        let filter = try RBACFilter(config: RBACFilterConfig(rules: RBACRules(action: .log, policies: ["log-deletes": policy])),
                                    hcmStatPrefix: hcm, stats: stats)
        let deleted = filter.decodeHeaders(FilterTestRequest.make(method: "DELETE"))
        #expect(!deleted.isDenied)
        #expect(deleted.accessLogHint == true)
        #expect(filter.decodeHeaders(FilterTestRequest.make()).accessLogHint == false)
        #expect(count("rbac.allowed") == 2)
    }

    @Test func shadowRulesAreCountedNeverEnforced() throws {
        let denyAll = RBACRules(action: .deny, policies: ["all": RBACPolicy(permissions: [.any], principals: [.any])])
        let filter = try RBACFilter(config: RBACFilterConfig(rules: nil, shadowRules: denyAll, statPrefix: "",
                                                             shadowRulesStatPrefix: "istio_dry_run_allow_"),
                                    hcmStatPrefix: hcm, stats: stats)
        let result = filter.decodeHeaders(FilterTestRequest.make())
        #expect(!result.isDenied)
        #expect(result.shadowResult == "denied")
        #expect(result.shadowEffectivePolicy == "all")
        #expect(count("rbac.istio_dry_run_allow_shadow_denied") == 1)
        #expect(stats.snapshot().contains { $0.name.description == "http.\(hcm).rbac.istio_dry_run_allow_shadow_denied" })
        #expect(count("rbac.allowed") == 0)
    }

    @Test func rulesStatPrefixGoesAfterRBAC() throws {
        let filter = try RBACFilter(config: RBACFilterConfig(rules: RBACRules(action: .deny, policies: [:]), statPrefix: "custom_"),
                                    hcmStatPrefix: hcm, stats: stats)
        _ = filter.decodeHeaders(FilterTestRequest.make())
        #expect(stats.counter(.http(hcm, "rbac.custom_allowed")).value == 1)
    }

    @Test func perRouteOverrideDisablesOrReplaces() throws {
        let denyAll = RBACRules(action: .deny, policies: ["all": RBACPolicy(permissions: [.any], principals: [.any])])
        let filter = try RBACFilter(config: RBACFilterConfig(rules: denyAll), hcmStatPrefix: hcm, stats: stats)
        #expect(filter.decodeHeaders(FilterTestRequest.make()).isDenied)
        #expect(!filter.decodeHeaders(FilterTestRequest.make(), routeOverride: .rbac(nil)).isDenied)
        let allowGet = RBACRules(action: .allow, policies: ["get": RBACPolicy(permissions: [method("GET")], principals: [.any])])
        #expect(!filter.decodeHeaders(FilterTestRequest.make(), routeOverride: .rbac(RBACFilterConfig(rules: allowGet))).isDenied)
        #expect(filter.decodeHeaders(FilterTestRequest.make(method: "PUT"),
                                     routeOverride: .rbac(RBACFilterConfig(rules: allowGet))).isDenied)
    }

    @Test func connectionLevelMatchers() {
        let plain = RBACConnectionInfo.plainText
        let request = FilterTestRequest.make(local: "10.0.0.9:8443")
        #expect(RBACEngine.matches(RBACPermission.requestedServerName(StringMatcher(.exact(""))), request, plain))
        #expect(!RBACEngine.matches(RBACPermission.requestedServerName(StringMatcher(.exact("a.com"))), request, plain))
        #expect(!RBACEngine.matches(RBACPrincipal.authenticated(nil), request, plain))
        #expect(RBACEngine.matches(RBACPrincipal.authenticated(nil), request, RBACConnectionInfo(peerPrincipal: "spiffe://x")))
        #expect(RBACEngine.matches(RBACPermission.destinationIP(CIDRRange("10.0.0.0/24")!), request, plain))
        #expect(RBACEngine.matches(RBACPermission.destinationPortRange(8000...8999), request, plain))
        #expect(!RBACEngine.matches(RBACPermission.destinationPortRange(9000...9999), request, plain))
        #expect(RBACEngine.matches(RBACPermission.and([]), request, plain))
        #expect(!RBACEngine.matches(RBACPermission.or([]), request, plain))
    }

    @Test func headerMatchingFollowsEnvoy() {
        let request = FilterTestRequest.make(headers: [("x-a", "1"), ("x-a", "2"), ("x-n", "42")])
        #expect(FilterMatching.matches(HeaderMatcher(name: "x-a", rule: .string(StringMatcher(.exact("1,2")))), request))
        #expect(FilterMatching.matches(HeaderMatcher(name: "x-n", rule: .range(start: 40, end: 43)), request))
        #expect(!FilterMatching.matches(HeaderMatcher(name: "x-n", rule: .range(start: 40, end: 42)), request))
        #expect(FilterMatching.matches(HeaderMatcher(name: "x-missing", rule: .present(false)), request))
        #expect(!FilterMatching.matches(HeaderMatcher(name: "x-missing", rule: .string(StringMatcher(.exact(""))), invert: true), request))
        #expect(FilterMatching.matches(HeaderMatcher(name: "x-missing", rule: .string(StringMatcher(.exact(""))),
                                                     treatMissingAsEmpty: true), request))
        #expect(FilterMatching.matches(HeaderMatcher(name: ":authority", rule: .string(StringMatcher(.suffix(".COM"), ignoreCase: true))),
                                       request))
        #expect(FilterMatching.matches(StringMatcher(.regex("v[0-9]+")), "v12"))
        #expect(!FilterMatching.matches(StringMatcher(.regex("v[0-9]+")), "xv12"))
    }

    @Test func invalidRegexIsRejected() {
        let policy = RBACPolicy(permissions: [.urlPath(StringMatcher(.regex("(")))], principals: [.any])
        #expect(throws: FilterConfigError.self) {
            _ = try RBACFilter(config: RBACFilterConfig(rules: RBACRules(action: .allow, policies: ["p": policy])),
                               hcmStatPrefix: "x", stats: StatsStore())
        }
    }
}

@Suite struct HTTPFilterChainBuildTests {
    @Test func buildsInOrderAndNamesTheBadFilter() throws {
        let stats = StatsStore()
        let built = try ConfiguredHTTPFilter.build(
            [HTTPFilter(name: "envoy.filters.http.cors", kind: .cors),
             HTTPFilter(name: "envoy.filters.http.fault", kind: .fault(FaultConfig())), .router()],
            hcmStatPrefix: "ingress", stats: stats)
        #expect(built.count == 3)
        if case .router = built[2] {} else { Issue.record("router not last") }

        let bad = RBACPolicy(permissions: [.header(HeaderMatcher(name: "x", rule: .string(StringMatcher(.regex("[")))))],
                             principals: [.any])
        do {
            _ = try ConfiguredHTTPFilter.build(
                [HTTPFilter(name: "envoy.filters.http.rbac",
                            kind: .rbac(RBACFilterConfig(rules: RBACRules(action: .allow, policies: ["p": bad])))), .router()],
                hcmStatPrefix: "ingress", stats: stats)
            Issue.record("accepted a bad regex")
        } catch {
            #expect(error.field == "http_filters[0] (envoy.filters.http.rbac)")
            #expect(error.problem == "envoy.filters.http.rbac.rules.policies[p].permissions.header[x]: invalid regex [")
        }
    }
}
