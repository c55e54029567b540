import SluiceConfig
import SluiceModel
import Testing

@Suite struct BootstrapLoaderTests {
    static let minimal = """
        admin:
          address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
        static_resources:
          listeners:
          - name: outbound
            address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
            additional_addresses:
            - address: { socket_address: { address: "::", port_value: 15001 } }
            use_original_dst: true
            listener_filters:
            - name: envoy.filters.listener.original_dst
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                  stat_prefix: outbound
                  cluster: passthrough
          clusters:
          - name: passthrough
            type: ORIGINAL_DST
            lb_policy: CLUSTER_PROVIDED
            connect_timeout: 2s
        """

    @Test func loadsListenersClustersAndAdmin() throws {
        let loaded = try BootstrapLoader.load(text: Self.minimal)
        let config = loaded.configuration
        #expect(config.admin == AdminConfig(address: .tcp(SocketEndpoint("127.0.0.1:15000")!)))
        let listener = try #require(config.listeners.first)
        #expect(listener.name == "outbound")
        #expect(listener.capture == .outbound)
        #expect(listener.useOriginalDestination)
        #expect(listener.listenerFilters == [.originalDestination])
        #expect(listener.addresses.map(\.endpoint.description) == ["0.0.0.0:15001", "[::]:15001"])
        #expect(listener.statName == "0.0.0.0_15001")
        guard case .tcpProxy(let proxy) = listener.filterChains[0].filters[0] else {
            Issue.record("expected tcp_proxy")
            return
        }
        #expect(proxy.route == .cluster("passthrough"))
        #expect(proxy.idleTimeout == .seconds(3600))
        #expect(proxy.maxConnectAttempts == 1)
        let cluster = try #require(config.clusters.first)
        #expect(cluster.discovery == .originalDestination(cleanupInterval: .seconds(5)))
        #expect(cluster.connectTimeout == .seconds(2))
        #expect(cluster.loadBalancing == .clusterProvided)
    }

    @Test func acceptsJSON() throws {
        let json = """
            {"static_resources": {"clusters": [{"name": "a", "type": "STATIC", "load_assignment": {"cluster_name": "a",
             "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]}]}}]}}
            """
        let loaded = try BootstrapLoader.load(text: json)
        #expect(loaded.configuration.clusters.first?.loadAssignment.localities.first?.endpoints.first?.address
            == .ip(SocketEndpoint("10.0.0.1:80")!))
    }

    @Test func unknownFieldIsNamedByPath() {
        let issues = issues(of: """
            static_resources:
              clusters:
              - name: a
                connect_timout: 1s
            """)
        #expect(issues.map(\.path) == ["static_resources.clusters[0].connect_timout"])
        #expect(issues.first?.kind == .invalid)
    }

    @Test func everyInvalidFieldIsReportedAtOnce() {
        let issues = issues(of: """
            static_resources:
              listeners:
              - name: l
                address: { socket_address: { address: 0.0.0.0, port_value: "x" } }
              clusters:
              - name: a
                lb_policy: FASTEST
            bogus: true
            """)
        #expect(Set(issues.map(\.path)) == [
            "static_resources.listeners[0].address.socket_address.port_value",
            "static_resources.clusters[0].lb_policy",
            "bogus",
        ])
        #expect(issues.allSatisfy { $0.kind == .invalid })
    }

    @Test func everyUnsupportedFeatureIsReportedAtOnce() {
        let issues = issues(of: """
            static_resources:
              clusters:
              - name: a
                health_checks: [{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, grpc_health_check: {} }]
                outlier_detection: { consecutive_5xx: 3, success_rate_minimum_hosts: 3 }
              - name: b
                type: LOGICAL_DNS
            """)
        #expect(Set(issues.map(\.path)) == [
            "static_resources.clusters[0].health_checks[0].grpc_health_check",
            "static_resources.clusters[0].outlier_detection.success_rate_minimum_hosts",
            "static_resources.clusters[1].type",
        ])
        #expect(issues.allSatisfy { $0.kind == .unsupported })
    }

    @Test func camelCaseJSONNamesAreAccepted() throws {
        let loaded = try BootstrapLoader.load(text: """
            staticResources:
              clusters:
              - name: a
                connectTimeout: 3s
            """)
        #expect(loaded.configuration.clusters.first?.connectTimeout == .seconds(3))
    }

    @Test func unsupportedExtensionTypeIsNamed() {
        let issues = issues(of: """
            static_resources:
              listeners:
              - name: l
                address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
                filter_chains:
                - filters:
                  - name: rbac
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
                      stat_prefix: x
            """)
        #expect(issues.count == 1)
        #expect(issues.first?.path == "static_resources.listeners[0].filter_chains[0].filters[0].typed_config")
        #expect(issues.first?.feature == "envoy.extensions.filters.network.rbac.v3.RBAC")
    }

    @Test func unknownTypeURLIsInvalid() {
        let issues = issues(of: """
            static_resources:
              listeners:
              - name: l
                address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
                filter_chains:
                - filters:
                  - name: x
                    typed_config: { "@type": type.googleapis.com/example.Nope }
            """)
        #expect(issues.map(\.kind) == [.invalid])
        #expect(issues.first?.message.contains("example.Nope") == true)
    }

    @Test func originalDestinationNeedsClusterProvided() {
        let issues = issues(of: """
            static_resources:
              clusters:
              - { name: a, type: ORIGINAL_DST, lb_policy: ROUND_ROBIN }
            """)
        #expect(issues.map(\.path) == ["static_resources.clusters[0].lb_policy"])
    }

    @Test func staticClustersNeedIPAddresses() {
        let issues = issues(of: """
            static_resources:
              clusters:
              - name: a
                load_assignment:
                  cluster_name: a
                  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: example.com, port_value: 80 } } } }] }]
            """)
        #expect(issues.map(\.path) == ["static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address"])
    }

    @Test func strictDNSAcceptsHostnames() throws {
        let loaded = try BootstrapLoader.load(text: """
            static_resources:
              clusters:
              - name: a
                type: STRICT_DNS
                dns_lookup_family: V4_ONLY
                dns_refresh_rate: 10s
                load_assignment:
                  cluster_name: a
                  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: localhost, port_value: 80 } } } }] }]
            """)
        let cluster = try #require(loaded.configuration.clusters.first)
        #expect(cluster.discovery == .strictDNS(refreshRate: .seconds(10), lookupFamily: .v4Only, respectTTL: false))
        #expect(cluster.loadAssignment.localities[0].endpoints[0].address == .hostname("localhost", port: 80))
    }

    @Test func duplicateNamesAndAddressesAreRejected() {
        let issues = issues(of: """
            static_resources:
              listeners:
              - name: a
                address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
                filter_chains: [{ filters: [{ name: t, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: c } }] }]
              - name: b
                address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
                filter_chains: [{ filters: [{ name: t, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: c } }] }]
              clusters:
              - { name: c }
              - { name: c }
            """)
        #expect(Set(issues.map(\.path)) == ["static_resources.listeners[1].address", "static_resources.clusters[1].name"])
    }

    @Test func duplicateFilterChainMatchesAreRejected() {
        let chain = """
            { filter_chain_match: { destination_port: 80, prefix_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }] }, filters: [{ name: t, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: c } }] }
            """
        let issues = issues(of: """
            static_resources:
              listeners:
              - name: a
                address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
                filter_chains: [\(chain), \(chain)]
              clusters: [{ name: c }]
            """)
        #expect(issues.map(\.path) == ["static_resources.listeners[0].filter_chains[1].filter_chain_match"])
    }

    @Test func tcpProxyOptionsTranslate() throws {
        let loaded = try BootstrapLoader.load(text: """
            static_resources:
              listeners:
              - name: a
                address: { socket_address: { address: 0.0.0.0, port_value: 9000 } }
                per_connection_buffer_limit_bytes: 32768
                metadata: { filter_metadata: { sluice: { capture: inbound } } }
                filter_chains:
                - filter_chain_match: { destination_port: 9000, source_ports: [1234], transport_protocol: raw_buffer }
                  filters:
                  - name: t
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: s
                      weighted_clusters: { clusters: [{ name: c, weight: 3 }, { name: d, weight: 1 }] }
                      idle_timeout: 0s
                      max_connect_attempts: 3
              clusters: [{ name: c }, { name: d }]
            """)
        let listener = try #require(loaded.configuration.listeners.first)
        #expect(listener.capture == .inbound)
        #expect(listener.perConnectionBufferLimitBytes == 32768)
        #expect(listener.filterChains[0].match == FilterChainMatch(destinationPort: 9000, transportProtocol: "raw_buffer", sourcePorts: [1234]))
        guard case .tcpProxy(let proxy) = listener.filterChains[0].filters[0] else {
            Issue.record("expected tcp_proxy")
            return
        }
        #expect(proxy.route == .weightedClusters([WeightedCluster(name: "c", weight: 3), WeightedCluster(name: "d", weight: 1)]))
        #expect(proxy.idleTimeout == nil)
        #expect(proxy.maxConnectAttempts == 3)
    }

    @Test func upstreamMarkFromBindConfig() throws {
        let loaded = try BootstrapLoader.load(text: """
            static_resources:
              clusters:
              - name: a
                upstream_bind_config:
                  socket_options: [{ level: 1, name: 36, int_value: 1337, state: STATE_PREBIND }]
            """)
        #expect(loaded.configuration.clusters.first?.upstreamMark == 1337)
        let issues = issues(of: """
            static_resources:
              clusters:
              - name: a
                upstream_bind_config:
                  socket_options: [{ level: 6, name: 1, int_value: 1 }]
            """)
        #expect(issues.map(\.path) == ["static_resources.clusters[0].upstream_bind_config.socket_options[0]"])
        #expect(issues.first?.kind == .unsupported)
    }

    @Test func unknownClusterReferenceIsAWarning() throws {
        let loaded = try BootstrapLoader.load(text: """
            static_resources:
              listeners:
              - name: a
                address: { socket_address: { address: 0.0.0.0, port_value: 9000 } }
                filter_chains: [{ filters: [{ name: t, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: missing } }] }]
            """)
        #expect(loaded.warnings.map(\.kind) == [.warning])
    }

    @Test func yamlSyntaxErrorsNameTheLine() {
        let issues = issues(of: "static_resources:\n  clusters: [\n")
        #expect(issues.count == 1)
        #expect(issues.first?.message.contains("line") == true || issues.first?.message.contains(":") == true)
    }

    @Test func malformedDurationIsNamed() {
        let issues = issues(of: "static_resources: { clusters: [{ name: b, connect_timeout: soon }] }")
        #expect(issues.map(\.path) == ["static_resources.clusters[0].connect_timeout"])
    }

    @Test func invalidValuesNameTheirField() {
        let issues = issues(of: """
            static_resources:
              clusters:
              - { name: a, connect_timeout: -1s }
              - { name: b, connect_timeout: 0s }
            """)
        #expect(Set(issues.map(\.path)) == ["static_resources.clusters[0].connect_timeout", "static_resources.clusters[1].connect_timeout"])
    }

    private func issues(of text: String) -> [ConfigIssue] {
        do {
            _ = try BootstrapLoader.load(text: text)
            return []
        } catch let error as ConfigIssues {
            return error.issues
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }
}
