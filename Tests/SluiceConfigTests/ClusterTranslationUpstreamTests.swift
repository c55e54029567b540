import Foundation
import SluiceConfig
import SluiceModel
import Testing

@Suite struct ClusterTranslationUpstreamTests {
    private func cluster(_ body: String) throws -> ClusterConfig {
        let loaded = try BootstrapLoader.load(text: """
            static_resources:
              clusters:
              - name: web
                connect_timeout: 1s
                load_assignment:
                  cluster_name: web
                  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } } }] }]
            \(body.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
            """)
        return try #require(loaded.configuration.clusters.first)
    }

    private func issues(_ body: String) -> [ConfigIssue] {
        do {
            _ = try cluster(body)
            return []
        } catch let error as ConfigIssues {
            return error.issues
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    @Test func defaultsFollowEnvoy() throws {
        let config = try cluster("")
        #expect(config.circuitBreakers.defaultPriority == CircuitBreakerThresholds(
            maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3))
        #expect(config.circuitBreakers.highPriority.maxRetries == 3)
        #expect(config.outlierDetection == nil)
        #expect(config.healthChecks.isEmpty)
        #expect(config.upstreamHTTP.protocolChoice == .http1)
        #expect(config.upstreamHTTP.idleTimeout == .seconds(3600))
        #expect(config.upstreamHTTP.maxRequestsPerConnection == nil)
        #expect(config.loadBalancing == .roundRobin)
    }

    @Test func circuitBreakerThresholdsPerPriority() throws {
        let config = try cluster("""
            circuit_breakers:
              thresholds:
              - { max_connections: 10, max_pending_requests: 2, track_remaining: true }
              - { priority: HIGH, max_requests: 7, max_retries: 0 }
            """)
        #expect(config.circuitBreakers.defaultPriority == CircuitBreakerThresholds(
            maxConnections: 10, maxPendingRequests: 2, maxRequests: 1024, maxRetries: 3, trackRemaining: true))
        #expect(config.circuitBreakers.highPriority == CircuitBreakerThresholds(maxRequests: 7, maxRetries: 0))
    }

    @Test func retryBudgetIsUnsupportedByPath() {
        let found = issues("""
            circuit_breakers:
              thresholds: [{ retry_budget: { budget_percent: { value: 20 } } }]
            """)
        #expect(found.map(\.path) == ["static_resources.clusters[0].circuit_breakers.thresholds[0].retry_budget"])
        #expect(found.first?.kind == .unsupported)
    }

    @Test func outlierDetectionDefaultsAndOverrides() throws {
        let defaults = try #require(try cluster("outlier_detection: {}").outlierDetection)
        #expect(defaults == OutlierDetectionConfig())
        #expect(defaults.consecutive5xx == 5 && defaults.baseEjectionTime == .seconds(30) && defaults.maxEjectionPercent == 10)
        #expect(defaults.enforcingConsecutiveGatewayFailure == 0 && defaults.maxEjectionTime == .seconds(300))
        let config = try #require(try cluster("""
            outlier_detection:
              consecutive_5xx: 3
              consecutive_gateway_failure: 2
              enforcing_consecutive_gateway_failure: 100
              split_external_local_origin_errors: true
              consecutive_local_origin_failure: 4
              interval: 2s
              base_ejection_time: 5s
              max_ejection_time: 20s
              max_ejection_percent: 50
              enforcing_success_rate: 0
            """).outlierDetection)
        #expect(config.consecutive5xx == 3)
        #expect(config.consecutiveGatewayFailure == 2)
        #expect(config.enforcingConsecutiveGatewayFailure == 100)
        #expect(config.splitExternalLocalOriginErrors)
        #expect(config.consecutiveLocalOriginFailure == 4)
        #expect(config.interval == .seconds(2))
        #expect(config.baseEjectionTime == .seconds(5))
        #expect(config.maxEjectionTime == .seconds(20))
        #expect(config.maxEjectionPercent == 50)
    }

    @Test func statisticalOutlierDetectorsAreUnsupported() {
        let found = issues("outlier_detection: { enforcing_success_rate: 100, failure_percentage_threshold: 90 }")
        #expect(Set(found.map(\.path)) == [
            "static_resources.clusters[0].outlier_detection.enforcing_success_rate",
            "static_resources.clusters[0].outlier_detection.failure_percentage_threshold",
        ])
        #expect(found.allSatisfy { $0.kind == .unsupported })
    }

    @Test func outlierPercentagesAreValidated() {
        let found = issues("outlier_detection: { max_ejection_percent: 150 }")
        #expect(found.map(\.path) == ["static_resources.clusters[0].outlier_detection.max_ejection_percent"])
        #expect(found.first?.kind == .invalid)
    }

    @Test func httpHealthCheckTranslates() throws {
        let config = try cluster("""
            health_checks:
            - timeout: 1s
              interval: 5s
              interval_jitter: 1s
              unhealthy_threshold: 3
              healthy_threshold: 2
              no_traffic_interval: 10s
              unhealthy_interval: 7s
              healthy_edge_interval: 2s
              http_health_check:
                path: /healthz
                host: web.local
                expected_statuses: [{ start: 200, end: 201 }, { start: 204, end: 205 }]
                request_headers_to_add: [{ header: { key: X-Check, value: "1" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }]
            """)
        let check = try #require(config.healthChecks.first)
        #expect(check.timeout == .seconds(1))
        #expect(check.interval == .seconds(5))
        #expect(check.intervalJitter == .seconds(1))
        #expect(check.unhealthyThreshold == 3 && check.healthyThreshold == 2)
        #expect(check.noTrafficInterval == .seconds(10))
        #expect(check.unhealthyInterval == .seconds(7))
        #expect(check.healthyEdgeInterval == .seconds(2))
        #expect(check.unhealthyEdgeInterval == nil)
        #expect(check.kind == .http(HTTPHealthCheck(
            path: "/healthz", host: "web.local", expectedStatuses: [200..<201, 204..<205],
            headers: [.init(name: "x-check", value: "1", append: false)])))
    }

    @Test func tcpHealthCheckPayloadsAreHex() throws {
        let config = try cluster("""
            health_checks:
            - { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1,
                tcp_health_check: { send: { text: "50494E47" }, receive: [{ text: "504F4E47" }] } }
            - { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }
            """)
        #expect(config.healthChecks.map(\.kind) == [
            .tcp(send: Data("PING".utf8), receive: [Data("PONG".utf8)]),
            .tcp(send: Data(), receive: []),
        ])
        #expect(config.healthChecks[0].noTrafficInterval == .seconds(60))
    }

    @Test func healthCheckErrorsNameTheirField() {
        let missing = issues("health_checks: [{ interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }]")
        #expect(missing.map(\.path) == ["static_resources.clusters[0].health_checks[0].timeout"])
        let badHex = issues("""
            health_checks: [{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1,
                              tcp_health_check: { send: { text: "XYZ" } } }]
            """)
        #expect(badHex.map(\.path) == ["static_resources.clusters[0].health_checks[0].tcp_health_check.send.text"])
        let unsupported = issues("""
            health_checks: [{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1,
                              event_log_path: /tmp/hc, http_health_check: { path: /, codec_client_type: HTTP2 } }]
            """)
        #expect(Set(unsupported.map(\.path)) == [
            "static_resources.clusters[0].health_checks[0].event_log_path",
            "static_resources.clusters[0].health_checks[0].http_health_check.codec_client_type",
        ])
        #expect(unsupported.allSatisfy { $0.kind == .unsupported })
    }

    @Test func hashLoadBalancers() throws {
        #expect(try cluster("lb_policy: RING_HASH").loadBalancing == .ringHash(RingHashSettings()))
        #expect(try cluster("lb_policy: RING_HASH\nring_hash_lb_config: { minimum_ring_size: 64, maximum_ring_size: 4096 }")
            .loadBalancing == .ringHash(RingHashSettings(minimumRingSize: 64, maximumRingSize: 4096)))
        #expect(try cluster("lb_policy: MAGLEV").loadBalancing == .maglev(tableSize: 65537))
        #expect(try cluster("lb_policy: MAGLEV\nmaglev_lb_config: { table_size: 251 }").loadBalancing == .maglev(tableSize: 251))
        let notPrime = issues("lb_policy: MAGLEV\nmaglev_lb_config: { table_size: 1000 }")
        #expect(notPrime.map(\.path) == ["static_resources.clusters[0].maglev_lb_config.table_size"])
        let murmur = issues("lb_policy: RING_HASH\nring_hash_lb_config: { hash_function: MURMUR_HASH_2 }")
        #expect(murmur.map(\.path) == ["static_resources.clusters[0].ring_hash_lb_config.hash_function"])
        #expect(murmur.first?.kind == .unsupported)
        let inverted = issues("lb_policy: RING_HASH\nring_hash_lb_config: { minimum_ring_size: 10, maximum_ring_size: 5 }")
        #expect(inverted.first?.kind == .invalid)
    }

    @Test func leastRequestBias() throws {
        let config = try cluster("lb_policy: LEAST_REQUEST\nleast_request_lb_config: { choice_count: 3, active_request_bias: { default_value: 0.5, runtime_key: x } }")
        #expect(config.loadBalancing == .leastRequest(choiceCount: 3))
        #expect(config.leastRequestActiveRequestBias == 0.5)
    }

    @Test func typedLoadBalancingPolicyTakesTheFirstKnown() throws {
        let config = try cluster("""
            load_balancing_policy:
              policies:
              - typed_extension_config:
                  name: envoy.load_balancing_policies.maglev
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.maglev.v3.Maglev, table_size: 131 }
              - typed_extension_config:
                  name: envoy.load_balancing_policies.round_robin
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin }
            """)
        #expect(config.loadBalancing == .maglev(tableSize: 131))
    }

    @Test func upstreamHTTPProtocolOptions() throws {
        let explicit = try cluster("""
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                common_http_protocol_options: { idle_timeout: 30s, max_requests_per_connection: 100 }
                explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 50, initial_stream_window_size: 65536 } }
            """)
        #expect(explicit.upstreamHTTP == UpstreamHTTPOptions(
            protocolChoice: .http2, http2: HTTP2ProtocolOptions(maxConcurrentStreams: 50, initialStreamWindowSize: 65536),
            idleTimeout: .seconds(30), maxRequestsPerConnection: 100))
        let downstream = try cluster("""
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                use_downstream_protocol_config: {}
            """)
        #expect(downstream.upstreamHTTP.protocolChoice == .useDownstream)
        let legacy = try cluster("http2_protocol_options: {}")
        #expect(legacy.upstreamHTTP.protocolChoice == .http2)
        let auto = issues("""
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                auto_config: {}
            """)
        #expect(auto.map(\.kind).contains(.unsupported))
        #expect(auto.allSatisfy { $0.path.hasPrefix("static_resources.clusters[0].typed_extension_protocol_options") })
    }
}
