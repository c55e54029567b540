import SluiceConfig
import SluiceModel
import Testing

/// The HTTP connection manager, route tables and HTTP filters, from bootstrap YAML to the model.
@Suite struct HTTPTranslationTests {
    /// A bootstrap whose only listener runs an HCM with `hcm` (indented as the typed_config's
    /// fields) and two static clusters, `a` and `b`.
    static func bootstrap(_ hcm: String) -> String {
        let body = hcm.split(separator: "\n", omittingEmptySubsequences: false).map { "          " + $0 }.joined(separator: "\n")
        return """
            static_resources:
              listeners:
              - name: http
                address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
            \(body)
              clusters:
              - { name: a, type: STATIC, connect_timeout: 1s }
              - { name: b, type: STATIC, connect_timeout: 1s }
            """
    }

    static func manager(_ hcm: String) throws -> HTTPConnectionManagerConfig {
        let loaded = try BootstrapLoader.load(text: bootstrap(hcm))
        guard case .httpConnectionManager(let manager)? = loaded.configuration.listeners.first?.filterChains.first?.filters.first else {
            throw ConfigIssues([ConfigIssue(.invalid, at: "", "no HCM")])
        }
        return manager
    }

    static func issues(_ hcm: String) -> [ConfigIssue] {
        do {
            _ = try BootstrapLoader.load(text: bootstrap(hcm))
            return []
        } catch let error as ConfigIssues {
            return error.issues
        } catch {
            return [ConfigIssue(.invalid, at: "", "\(error)")]
        }
    }

    static let hcmPath = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"

    static let minimalRoutes = """
        route_config:
          name: local
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: { prefix: "/" }
              route: { cluster: a }
        """

    @Test func minimalManagerGetsEnvoysDefaults() throws {
        let manager = try Self.manager("stat_prefix: ingress\n" + Self.minimalRoutes)
        #expect(manager.statPrefix == "ingress")
        #expect(manager.codecType == .auto)
        #expect(manager.httpFilters == [.router()], "Envoy adds the router to an empty filter list")
        #expect(manager.streamIdleTimeout == .seconds(300))
        #expect(manager.requestTimeout == nil)
        #expect(manager.idleTimeout == .seconds(3600))
        #expect(manager.maxRequestHeadersKB == 60)
        #expect(manager.maxRequestHeadersCount == 100)
        #expect(manager.drainTimeout == .seconds(5))
        #expect(manager.delayedCloseTimeout == .seconds(1))
        #expect(manager.generateRequestID)
        #expect(!manager.useRemoteAddress)
        #expect(manager.serverName == "envoy")
        #expect(manager.http2 == HTTP2ProtocolOptions())
        guard case .inline(let routes) = manager.routes else {
            Issue.record("expected inline routes")
            return
        }
        #expect(routes.name == "local")
        #expect(routes.validateClusters, "validate_clusters defaults to true for a static route table")
        let route = try #require(routes.virtualHosts.first?.routes.first)
        #expect(route.match == RouteMatch(path: .prefix("/")))
        guard case .forward(let action) = route.action else {
            Issue.record("expected a forwarding route")
            return
        }
        #expect(action.target == .cluster("a"))
        #expect(action.timeout == .seconds(15))
        #expect(action.clusterNotFoundStatus == 503)
        #expect(action.retryPolicy == nil)
    }

    @Test func managerOptionsTranslate() throws {
        let manager = try Self.manager("""
            stat_prefix: edge
            codec_type: HTTP2
            use_remote_address: true
            xff_num_trusted_hops: 2
            skip_xff_append: true
            via: sluice
            generate_request_id: false
            preserve_external_request_id: true
            server_name: edge-proxy
            server_header_transformation: PASS_THROUGH
            stream_idle_timeout: 0s
            request_timeout: 30s
            request_headers_timeout: 2s
            max_request_headers_kb: 96
            drain_timeout: 10s
            delayed_close_timeout: 0s
            normalize_path: true
            merge_slashes: true
            path_with_escaped_slashes_action: KEEP_UNCHANGED
            common_http_protocol_options: { idle_timeout: 0s, max_connection_duration: 600s, max_requests_per_connection: 1000, max_headers_count: 50 }
            http2_protocol_options: { max_concurrent_streams: 128, initial_stream_window_size: 65536, initial_connection_window_size: 1048576 }
            upgrade_configs: [{ upgrade_type: websocket }, { upgrade_type: CONNECT, enabled: false }]
            internal_address_config: { cidr_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }] }
            request_id_extension:
              typed_config: { "@type": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, use_request_id_for_trace_sampling: true }
            access_log:
            - name: envoy.access_loggers.file
              typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/stdout }
            - name: envoy.access_loggers.file
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                path: /tmp/a.log
                log_format: { text_format_source: { inline_string: "%RESPONSE_CODE%\\n" } }
            - name: envoy.access_loggers.file
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                path: /tmp/b.log
                log_format: { json_format: { status: "%RESPONSE_CODE%" } }
            - name: envoy.access_loggers.file
              typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/c.log, format: "%PROTOCOL%" }
            """ + "\n" + Self.minimalRoutes)
        #expect(manager.codecType == .http2)
        #expect(manager.useRemoteAddress && manager.xffNumTrustedHops == 2 && manager.skipXFFAppend)
        #expect(manager.via == "sluice")
        #expect(!manager.generateRequestID && manager.preserveExternalRequestID)
        #expect(manager.serverName == "edge-proxy" && manager.serverHeaderTransformation == .passThrough)
        #expect(manager.streamIdleTimeout == nil, "0s disables the stream idle timeout")
        #expect(manager.requestTimeout == .seconds(30) && manager.requestHeadersTimeout == .seconds(2))
        #expect(manager.maxRequestHeadersKB == 96)
        #expect(manager.drainTimeout == .seconds(10) && manager.delayedCloseTimeout == .zero)
        #expect(manager.normalizePath && manager.mergeSlashes)
        #expect(manager.idleTimeout == nil && manager.maxConnectionDuration == .seconds(600))
        #expect(manager.maxRequestsPerConnection == 1000 && manager.maxRequestHeadersCount == 50)
        #expect(manager.http2 == HTTP2ProtocolOptions(maxConcurrentStreams: 128, initialStreamWindowSize: 65536, initialConnectionWindowSize: 1_048_576))
        #expect(manager.upgradeTypes == ["websocket": true, "connect": false])
        #expect(manager.internalAddresses == [CIDRRange("10.0.0.0/8")!])
        #expect(manager.accessLogs == [
            AccessLogConfig(path: "/dev/stdout"),
            AccessLogConfig(path: "/tmp/a.log", format: .text("%RESPONSE_CODE%\n")),
            AccessLogConfig(path: "/tmp/b.log", format: .json(["status": "%RESPONSE_CODE%"])),
            AccessLogConfig(path: "/tmp/c.log", format: .text("%PROTOCOL%")),
        ])
    }

    @Test func httpFiltersTranslateInOrder() throws {
        let manager = try Self.manager("""
            stat_prefix: x
            http_filters:
            - name: envoy.filters.http.fault
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                delay: { fixed_delay: 2s, percentage: { numerator: 5, denominator: TEN_THOUSAND } }
                abort: { http_status: 503, percentage: { numerator: 250 } }
                upstream_cluster: a
                headers: [{ name: x-fault, present_match: true }]
                downstream_nodes: [n1]
                max_active_faults: 3
            - name: envoy.filters.http.rbac
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                rules:
                  action: DENY
                  policies:
                    ns:
                      permissions: [{ and_rules: { rules: [{ header: { name: ":method", string_match: { exact: GET } } }, { destination_port: 8080 }] } }]
                      principals: [{ or_ids: { ids: [{ authenticated: { principal_name: { prefix: "spiffe://cluster.local/ns/foo/" } } }, { remote_ip: { address_prefix: 10.1.0.0, prefix_len: 16 } }] } }]
                shadow_rules:
                  policies:
                    anyone: { permissions: [{ not_rule: { url_path: { path: { prefix: /admin } } } }], principals: [{ any: true }] }
                shadow_rules_stat_prefix: dry_
            - name: envoy.filters.http.local_ratelimit
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                stat_prefix: quota
                token_bucket: { max_tokens: 10, tokens_per_fill: 5, fill_interval: 1s }
                filter_enabled: { default_value: { numerator: 100 }, runtime_key: e }
                filter_enforced: { default_value: { numerator: 50 }, runtime_key: f }
                status: { code: ServiceUnavailable }
                response_headers_to_add: [{ header: { key: x-limited, value: "yes" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }]
                enable_x_ratelimit_headers: DRAFT_VERSION_03
            - name: envoy.filters.http.cors
              disabled: true
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
            - name: envoy.filters.http.router
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, suppress_envoy_headers: true }
            """ + "\n" + Self.minimalRoutes)
        #expect(manager.httpFilters.map(\.name) == [
            "envoy.filters.http.fault", "envoy.filters.http.rbac", "envoy.filters.http.local_ratelimit", "envoy.filters.http.cors",
            "envoy.filters.http.router",
        ])
        #expect(manager.httpFilters[0].kind == .fault(FaultConfig(
            delay: FaultConfig.Delay(fixed: .seconds(2), percentage: FractionalPercent(numerator: 5, denominator: 10_000)),
            abort: FaultConfig.Abort(kind: .httpStatus(503), percentage: FractionalPercent(numerator: 100)),
            upstreamCluster: "a", headers: [HeaderMatcher(name: "x-fault", rule: .present(true))], downstreamNodes: ["n1"],
            maxActiveFaults: 3)))
        let expectedRBAC = RBACFilterConfig(
            rules: RBACRules(action: .deny, policies: ["ns": RBACPolicy(
                permissions: [.and([.header(HeaderMatcher(name: ":method", rule: .string(StringMatcher(.exact("GET"))))), .destinationPort(8080)])],
                principals: [.or([.authenticated(StringMatcher(.prefix("spiffe://cluster.local/ns/foo/"))), .remoteIP(CIDRRange("10.1.0.0/16")!)])])]),
            shadowRules: RBACRules(action: .allow, policies: ["anyone": RBACPolicy(
                permissions: [.not(.urlPath(StringMatcher(.prefix("/admin"))))], principals: [.any])]),
            shadowRulesStatPrefix: "dry_")
        #expect(manager.httpFilters[1].kind == .rbac(expectedRBAC))
        #expect(manager.httpFilters[2].kind == .localRateLimit(LocalRateLimitConfig(
            statPrefix: "quota", tokenBucket: TokenBucket(maxTokens: 10, tokensPerFill: 5, fillInterval: .seconds(1)),
            filterEnabled: .all, filterEnforced: FractionalPercent(numerator: 50), status: 503,
            responseHeadersToAdd: [HeaderValueOption(name: "x-limited", value: "yes", action: .overwriteIfExistsOrAdd)],
            enableXRateLimitHeaders: true)))
        #expect(manager.httpFilters[3].kind == .cors)
        #expect(manager.httpFilters.map(\.disabledByDefault) == [false, false, false, true, false])
        #expect(manager.httpFilters[4].kind == .router(RouterConfig(suppressEnvoyHeaders: true)))
    }

    @Test func unknownOptionalFilterIsIgnoredOtherwiseUnsupported() throws {
        let filter = """
            stat_prefix: x
            http_filters:
            - name: buffer
              is_optional: OPTIONAL
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 1024 }
            - name: envoy.filters.http.router
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
            """ + "\n" + Self.minimalRoutes
        let loaded = try BootstrapLoader.load(text: Self.bootstrap(filter.replacingOccurrences(of: "OPTIONAL", with: "true")))
        let ignored = loaded.warnings.filter { $0.kind == .ignored }
        #expect(ignored.map(\.path) == ["\(Self.hcmPath).http_filters[0].typed_config"])
        #expect(ignored.first?.feature == "envoy.extensions.filters.http.buffer.v3.Buffer")
        guard case .httpConnectionManager(let manager)? = loaded.configuration.listeners.first?.filterChains.first?.filters.first else {
            Issue.record("expected an HCM")
            return
        }
        #expect(manager.httpFilters.map(\.name) == ["envoy.filters.http.router"])

        let issues = Self.issues(filter.replacingOccurrences(of: "OPTIONAL", with: "false"))
        #expect(issues.map(\.kind) == [.unsupported])
        #expect(issues.first?.path == "\(Self.hcmPath).http_filters[0].typed_config")
    }

    @Test func optionalUnknownPerRouteConfigIsIgnored() throws {
        let loaded = try BootstrapLoader.load(text: Self.bootstrap("""
            stat_prefix: x
            route_config:
              validate_clusters: false
              virtual_hosts:
              - name: all
                domains: ["*"]
                routes:
                - match: { prefix: / }
                  route: { cluster: a }
                  typed_per_filter_config:
                    buffer:
                      "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                      is_optional: true
                      config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: true }
            """))
        #expect(loaded.warnings.filter { $0.kind == .ignored }.map(\.path) == [
            "\(Self.hcmPath).route_config.virtual_hosts[0].routes[0].typed_per_filter_config[buffer].config",
        ])
    }

    @Test func routerMustBeLastAndAFilterMustNotEndTheChain() {
        let routerFirst = Self.issues("""
            stat_prefix: x
            http_filters:
            - name: envoy.filters.http.router
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
            - name: envoy.filters.http.cors
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
            """ + "\n" + Self.minimalRoutes)
        #expect(routerFirst.map(\.path) == ["\(Self.hcmPath).http_filters[0]", "\(Self.hcmPath).http_filters[1]"])
        #expect(routerFirst[0].message.contains("must be the last filter in a http filter chain"))
        #expect(routerFirst[1].message.contains("non-terminal filter named envoy.filters.http.cors"))
    }

    @Test func managerErrorsNameTheirFields() {
        let noRoutes = Self.issues("stat_prefix: x")
        #expect(noRoutes.map(\.path) == [Self.hcmPath])
        #expect(noRoutes.first?.message.contains("route_config, rds or scoped_routes") == true)

        let bad = Self.issues("""
            stat_prefix: x
            codec_type: HTTP3
            max_request_headers_kb: 9000
            http2_protocol_options: { initial_stream_window_size: 100 }
            upgrade_configs: [{ upgrade_type: websocket }, { upgrade_type: WebSocket }]
            """ + "\n" + Self.minimalRoutes)
        #expect(Set(bad.map(\.path)) == [
            "\(Self.hcmPath).codec_type", "\(Self.hcmPath).max_request_headers_kb",
            "\(Self.hcmPath).http2_protocol_options.initial_stream_window_size", "\(Self.hcmPath).upgrade_configs[1]",
        ])
        #expect(bad.first { $0.path.hasSuffix("codec_type") }?.kind == .unsupported)
    }

    @Test func rdsWithoutADSIsAClearError() {
        let issues = Self.issues("""
            stat_prefix: x
            rds: { route_config_name: r1, config_source: { ads: {} } }
            """)
        #expect(issues.map(\.path) == ["\(Self.hcmPath).rds"])
        #expect(issues.first?.message.contains("no dynamic_resources.ads_config") == true)
    }

    @Test func staticRouteTableRejectsUnknownClustersUnlessValidationIsOff() throws {
        let routes = """
            stat_prefix: x
            route_config:
              VALIDATE
              virtual_hosts:
              - name: all
                domains: ["*"]
                routes: [{ match: { prefix: / }, route: { cluster: missing } }]
            """
        let issues = Self.issues(routes.replacingOccurrences(of: "VALIDATE", with: "name: r"))
        #expect(issues.map(\.message) == ["route: unknown cluster 'missing' in route_config \"r\" (set validate_clusters: false for clusters from CDS)"])
        _ = try Self.manager(routes.replacingOccurrences(of: "VALIDATE", with: "validate_clusters: false"))
    }

    @Test func routeTableTranslatesEveryMatchAndAction() throws {
        let manager = try Self.manager("""
            stat_prefix: x
            route_config:
              name: table
              internal_only_headers: [X-Internal]
              most_specific_header_mutations_wins: true
              request_headers_to_add: [{ header: { key: x-table, value: t }, append: false }]
              response_headers_to_remove: [x-secret]
              virtual_hosts:
              - name: api
                domains: ["api.example.com", "*.api.example.com:8080"]
                include_request_attempt_count: true
                retry_policy: { retry_on: "5xx,connect-failure", num_retries: 3 }
                cors: { allow_origin_string_match: [{ exact: "https://a.example" }], allow_methods: "GET", max_age: "60" }
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
                routes:
                - name: exact
                  match: { path: /health, case_sensitive: false, headers: [{ name: x-a, exact_match: "1", invert_match: true }, { name: x-r, range_match: { start: 1, end: 10 } }] }
                  direct_response: { status: 200, body: { inline_string: ok } }
                - match: { safe_regex: { regex: "^/v[0-9]+/.*" }, grpc: {}, query_parameters: [{ name: debug, present_match: true }, { name: q, string_match: { suffix: x, ignore_case: true } }], runtime_fraction: { default_value: { numerator: 30 }, runtime_key: k } }
                  route:
                    weighted_clusters:
                      header_name: x-pick
                      clusters:
                      - name: a
                        weight: 3
                        request_headers_to_add: [{ header: { key: x-w, value: a }, append_action: ADD_IF_ABSENT }]
                        typed_per_filter_config:
                          envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
                      - { name: b, weight: 1 }
                    timeout: 0s
                    idle_timeout: 10s
                    prefix_rewrite: /
                    host_rewrite_literal: backend.local
                    retry_policy:
                      retry_on: "retriable-status-codes, reset,unavailable"
                      per_try_timeout: 1s
                      retriable_status_codes: [409]
                      retriable_headers: [{ name: x-retry, present_match: true }]
                      retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }]
                      host_selection_retry_max_attempts: 5
                      retry_back_off: { base_interval: 0.1s }
                    request_mirror_policies: [{ cluster: b, runtime_fraction: { default_value: { numerator: 10 } } }]
                    hash_policy: [{ header: { header_name: X-User } }, { connection_properties: { source_ip: true }, terminal: true }]
                    max_stream_duration: { grpc_timeout_header_max: 5s }
                    upgrade_configs: [{ upgrade_type: websocket, enabled: false }]
                - match: { path_separated_prefix: /old }
                  redirect: { https_redirect: true, port_redirect: 8443, prefix_rewrite: /new, response_code: TEMPORARY_REDIRECT, strip_query: true }
                - match: { prefix: /local }
                  non_forwarding_action: {}
                - match: { prefix: /lrl }
                  route: { cluster_header: X-Cluster, cluster_not_found_response_code: NOT_FOUND, regex_rewrite: { pattern: { regex: "^/lrl" }, substitution: "/" } }
                  typed_per_filter_config:
                    envoy.filters.http.local_ratelimit:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                      stat_prefix: per_route
                      token_bucket: { max_tokens: 1, fill_interval: 60s }
                    envoy.filters.http.cors:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                      allow_origin_string_match: [{ safe_regex: { regex: ".*" } }]
                      allow_credentials: true
            """)
        guard case .inline(let table) = manager.routes else {
            Issue.record("expected inline routes")
            return
        }
        #expect(table.internalOnlyHeaders == ["x-internal"] && table.mostSpecificHeaderMutationsWins)
        #expect(table.headers.requestHeadersToAdd == [HeaderValueOption(name: "x-table", value: "t", action: .overwriteIfExistsOrAdd)])
        #expect(table.headers.responseHeadersToRemove == ["x-secret"])
        let host = try #require(table.virtualHosts.first)
        #expect(host.domains == ["api.example.com", "*.api.example.com:8080"])
        #expect(host.includeRequestAttemptCount)
        #expect(host.retryPolicy == RetryPolicy(retryOn: [.fiveXX, .connectFailure], numRetries: 3))
        #expect(host.filterOverrides["envoy.filters.http.fault"] == .disabled)
        #expect(host.filterOverrides["envoy.filters.http.cors"] == .cors(CORSPolicy(
            allowOrigins: [StringMatcher(.exact("https://a.example"))], allowMethods: "GET", maxAge: "60")))
        #expect(host.routes.count == 5)

        let health = host.routes[0]
        #expect(health.name == "exact")
        #expect(health.match == RouteMatch(path: .path("/health"), caseSensitive: false, headers: [
            HeaderMatcher(name: "x-a", rule: .string(StringMatcher(.exact("1"))), invert: true),
            HeaderMatcher(name: "x-r", rule: .range(start: 1, end: 10)),
        ]))
        #expect(health.action == .directResponse(status: 200, body: "ok"))

        let weighted = host.routes[1]
        #expect(weighted.match == RouteMatch(
            path: .safeRegex("^/v[0-9]+/.*"),
            queryParameters: [QueryParameterMatcher(name: "debug", presentMatch: true),
                              QueryParameterMatcher(name: "q", matcher: StringMatcher(.suffix("x"), ignoreCase: true))],
            grpc: true, fraction: FractionalPercent(numerator: 30)))
        guard case .forward(let action) = weighted.action, case .weighted(let clusters) = action.target else {
            Issue.record("expected weighted clusters")
            return
        }
        #expect(clusters.randomValueHeader == "x-pick")
        #expect(clusters.clusters == [
            WeightedHTTPClusters.Entry(
                name: "a", weight: 3,
                headers: HeaderMutations(requestHeadersToAdd: [HeaderValueOption(name: "x-w", value: "a", action: .addIfAbsent)]),
                filterOverrides: ["envoy.filters.http.rbac": .rbac(nil)]),
            WeightedHTTPClusters.Entry(name: "b", weight: 1),
        ])
        #expect(action.timeout == nil, "timeout: 0s disables the route timeout")
        #expect(action.idleTimeout == .seconds(10))
        #expect(action.prefixRewrite == "/")
        #expect(action.hostRewrite == .literal("backend.local"))
        #expect(action.retryPolicy == RetryPolicy(
            retryOn: [.retriableStatusCodes, .reset, .grpcUnavailable], numRetries: 1, perTryTimeout: .seconds(1),
            retriableStatusCodes: [409], retriableHeaders: [HeaderMatcher(name: "x-retry", rule: .present(true))],
            avoidPreviousHosts: true, hostSelectionMaxAttempts: 5, backOffBase: .milliseconds(100)))
        #expect(action.retryPolicy?.backOffMax == .seconds(1), "max_interval defaults to 10 × base_interval")
        #expect(action.mirrors == [RequestMirrorPolicy(cluster: "b", fraction: FractionalPercent(numerator: 10))])
        #expect(action.hashPolicies == [HashPolicy(source: .header("x-user")), HashPolicy(source: .sourceIP, terminal: true)])
        #expect(action.grpcTimeoutHeaderMax == .seconds(5))
        #expect(action.upgradeConfigs == ["websocket": false])

        #expect(host.routes[2].match.path == .pathSeparatedPrefix("/old"))
        #expect(host.routes[2].action == .redirect(RedirectAction(
            scheme: "https", port: 8443, path: .prefix("/new"), status: 307, stripQuery: true)))
        #expect(host.routes[3].action == .nonForwarding)

        let perRoute = host.routes[4]
        guard case .forward(let headerAction) = perRoute.action else {
            Issue.record("expected a forwarding route")
            return
        }
        #expect(headerAction.target == .clusterHeader("x-cluster"))
        #expect(headerAction.clusterNotFoundStatus == 404)
        #expect(headerAction.regexRewritePattern == "^/lrl" && headerAction.regexRewriteSubstitution == "/")
        #expect(perRoute.filterOverrides["envoy.filters.http.local_ratelimit"] == .localRateLimit(LocalRateLimitConfig(
            statPrefix: "per_route", tokenBucket: TokenBucket(maxTokens: 1, fillInterval: .seconds(60)))))
        #expect(perRoute.filterOverrides["envoy.filters.http.cors"] == .cors(CORSPolicy(
            allowOrigins: [StringMatcher(.regex(".*"))], allowCredentials: true)))
    }

    @Test func routeErrorsNameTheirFields() {
        let issues = Self.issues("""
            stat_prefix: x
            route_config:
              validate_clusters: false
              virtual_hosts:
              - name: one
                domains: ["*", "a.*.com"]
                routes:
                - match: { prefix: / }
                  route:
                    cluster: a
                    retry_policy: { retry_on: "5xx,sometimes", retry_back_off: { base_interval: 1s, max_interval: 0.5s } }
                - match: { safe_regex: { regex: "" } }
                  route: { cluster: a }
                - match: { prefix: /w }
                  route: { weighted_clusters: { clusters: [{ name: a, weight: 0 }] } }
                - match: { prefix: /t }
                  route: { weighted_clusters: { total_weight: 10, clusters: [{ name: a, weight: 3 }] } }
                - match: { prefix: /h }
                  route: { cluster: a }
                  request_headers_to_add: [{ header: { key: ":path", value: x } }, { header: { key: y, value: z }, append: true, append_action: ADD_IF_ABSENT }]
                  response_headers_to_remove: [host]
              - name: one
                domains: ["*"]
            """)
        let vh = "\(Self.hcmPath).route_config.virtual_hosts"
        #expect(Set(issues.map(\.path)) == [
            "\(vh)[0].routes[0].route.retry_policy.retry_on",
            "\(vh)[0].routes[0].route.retry_policy.retry_back_off.max_interval",
            "\(vh)[0].routes[1].match.safe_regex.regex",
            "\(vh)[0].routes[2].route.weighted_clusters.clusters",
            "\(vh)[0].routes[3].route.weighted_clusters.total_weight",
            "\(vh)[0].routes[4].request_headers_to_add[0].header.key",
            "\(vh)[0].routes[4].request_headers_to_add[1]",
            "\(vh)[0].routes[4].response_headers_to_remove[0]",
            "\(vh)[1].name",
            "\(vh)[1].domains[0]",
        ])
        #expect(issues.contains { $0.message == "unknown retry condition \"sometimes\"" })
        #expect(issues.contains { $0.message == "Sum of weights in the weighted_cluster must be greater than 0." })
        #expect(issues.allSatisfy { $0.kind == .invalid })
    }

    @Test func directResponseBodiesAreBounded() throws {
        let table = """
            stat_prefix: x
            route_config:
              LIMIT
              virtual_hosts:
              - name: one
                domains: ["*"]
                routes: [{ match: { prefix: / }, direct_response: { status: 503, body: { inline_string: "0123456789" } } }]
            """
        let issues = Self.issues(table.replacingOccurrences(of: "LIMIT", with: "max_direct_response_body_size_bytes: 8"))
        #expect(issues.map(\.path) == ["\(Self.hcmPath).route_config.virtual_hosts[0].routes[0].direct_response.body"])
        #expect(issues.first?.message == "response body size is 10 bytes; maximum is 8")
        let manager = try Self.manager(table.replacingOccurrences(of: "LIMIT", with: "name: fits"))
        guard case .inline(let routes) = manager.routes else {
            Issue.record("expected inline routes")
            return
        }
        #expect(routes.virtualHosts.first?.routes.first?.action == .directResponse(status: 503, body: "0123456789"))
    }

    @Test func unsupportedRoutePartsAreNamed() {
        let issues = Self.issues("""
            stat_prefix: x
            route_config:
              validate_clusters: false
              virtual_hosts:
              - name: one
                domains: ["*"]
                routes:
                - match: { connect_matcher: {} }
                  route: { cluster: a }
                - match: { prefix: /f }
                  direct_response: { status: 200, body: { filename: /etc/hosts } }
                - match: { prefix: /r }
                  route:
                    cluster: a
                    hash_policy: [{ cookie: { name: c, ttl: 10s } }]
            """)
        #expect(issues.map(\.feature) == [
            "envoy.config.route.v3.RouteMatch.connect_matcher",
            "envoy.config.core.v3.DataSource.filename",
            "envoy.config.route.v3.RouteAction.HashPolicy.Cookie.ttl",
        ])
        #expect(issues.allSatisfy { $0.kind == .unsupported })
    }

    @Test func rbacPrincipalsSluiceLacksAreUnsupportedByPath() {
        let issues = Self.issues("""
            stat_prefix: x
            http_filters:
            - name: envoy.filters.http.rbac
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                rules:
                  policies:
                    jwt:
                      permissions: [{ any: true }]
                      principals: [{ metadata: { filter: envoy.filters.http.jwt_authn, path: [{ key: sub }], value: { string_match: { exact: u } } } }]
            - name: envoy.filters.http.router
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
            """ + "\n" + Self.minimalRoutes)
        #expect(issues.map(\.path) == ["\(Self.hcmPath).http_filters[0].typed_config.rules.policies[jwt].principals[0].metadata"])
        #expect(issues.first?.kind == .unsupported)
    }

    @Test func localRateLimitDescriptorsAreUnsupported() {
        let issues = Self.issues("""
            stat_prefix: x
            http_filters:
            - name: envoy.filters.http.local_ratelimit
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                stat_prefix: q
                descriptors: [{ entries: [{ key: k, value: v }], token_bucket: { max_tokens: 1, fill_interval: 1s } }]
            - name: envoy.filters.http.router
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
            """ + "\n" + Self.minimalRoutes)
        #expect(issues.map(\.feature) == ["envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.descriptors"])
    }
}
