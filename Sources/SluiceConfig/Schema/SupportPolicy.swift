/// What Sluice implements, stated once: the fields it reads per Envoy message and the extension
/// types it accepts in `typed_config`. Anything else that is valid Envoy configuration is
/// reported as unsupported, by path, instead of being silently ignored.
public struct SupportPolicy: Sendable {
    public var fields: [String: Set<String>]
    public var types: Set<String>

    public func supports(field: String, of message: String) -> Bool {
        fields[message]?.contains(field) ?? false
    }

    public func supports(type: String) -> Bool {
        types.contains(type) || WellKnownType(rawValue: type) != nil
    }

    /// Type names of Istio's own proxy extensions, which are not part of Envoy's API.
    static func isIstioExtension(_ typeName: String) -> Bool {
        ["istio.", "io.istio.", "envoy.tcp.metadataexchange.", "stats.", "envoy.extensions.filters.http.istio_stats"]
            .contains { typeName.hasPrefix($0) }
    }

    /// Namespaces of Envoy's API: a type there that this build's schema lacks is a valid
    /// extension Sluice does not implement, not a typo.
    static func isEnvoyNamespace(_ typeName: String) -> Bool {
        ["envoy.", "xds.", "udpa."].contains { typeName.hasPrefix($0) }
    }

    /// Istio's telemetry-only extensions (stats, peer metadata exchange, ALPN hints for mTLS):
    /// they never change where traffic goes, so Sluice accepts configuration containing them
    /// and skips them, reporting each as `ignored` (logged, and counted in
    /// `sluice.config.ignored_extensions`). Everything else unknown is rejected.
    public var ignoredExtensions: [String: String] = [
        "stats.PluginConfig": "Istio's stats filter (istio.stats); telemetry only, skipped",
        "envoy.tcp.metadataexchange.config.MetadataExchange": "Istio's TCP metadata exchange; telemetry only, skipped",
        "io.istio.http.peer_metadata.Config": "Istio's peer metadata filter; telemetry only, skipped",
        "istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig": "Istio's ALPN override for mTLS upstreams; skipped",
    ]

    /// Untyped wrappers whose `type_url` names the real configuration type.
    static let typedStructTypes: Set<String> = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"]

    /// What this build implements.
    public static let current = SupportPolicy(
        fields: [
            "envoy.config.bootstrap.v3.Bootstrap": ["node", "static_resources", "dynamic_resources", "admin"],
            "envoy.config.bootstrap.v3.Bootstrap.StaticResources": ["listeners", "clusters"],
            "envoy.config.bootstrap.v3.Bootstrap.DynamicResources": ["lds_config", "cds_config", "ads_config"],
            "envoy.config.core.v3.ApiConfigSource": [
                "api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only",
            ],
            "envoy.config.core.v3.GrpcService": ["envoy_grpc", "timeout"],
            "envoy.config.core.v3.GrpcService.EnvoyGrpc": ["cluster_name", "authority", "retry_policy"],
            "envoy.config.core.v3.RetryPolicy": ["retry_back_off"],
            "envoy.config.core.v3.BackoffStrategy": ["base_interval", "max_interval"],
            "envoy.config.core.v3.ConfigSource": ["ads", "initial_fetch_timeout", "resource_api_version"],
            "envoy.config.core.v3.AggregatedConfigSource": [],
            "envoy.config.cluster.v3.Cluster.EdsClusterConfig": ["eds_config", "service_name"],
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": ["explicit_http_config"],
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig": ["http2_protocol_options"],
            "envoy.config.core.v3.Http2ProtocolOptions": [],
            "envoy.config.bootstrap.v3.Admin": ["address"],
            "envoy.config.core.v3.Node": ["id", "cluster", "metadata", "locality", "user_agent_name", "client_features"],
            "envoy.config.core.v3.Locality": ["region", "zone", "sub_zone"],
            "envoy.config.core.v3.Metadata": ["filter_metadata"],
            "envoy.config.core.v3.Address": ["socket_address", "pipe"],
            "envoy.config.core.v3.SocketAddress": ["protocol", "address", "port_value", "ipv4_compat"],
            "envoy.config.core.v3.Pipe": ["path", "mode"],
            "envoy.config.core.v3.CidrRange": ["address_prefix", "prefix_len"],
            "envoy.config.listener.v3.Listener": [
                "name", "address", "additional_addresses", "stat_prefix", "filter_chains", "default_filter_chain",
                "use_original_dst", "listener_filters", "per_connection_buffer_limit_bytes", "metadata",
                "bind_to_port", "traffic_direction",
            ],
            "envoy.config.listener.v3.AdditionalAddress": ["address"],
            "envoy.config.listener.v3.ListenerFilter": ["name", "typed_config"],
            "envoy.config.listener.v3.FilterChain": ["name", "filter_chain_match", "filters", "metadata"],
            "envoy.config.listener.v3.FilterChainMatch": [
                "destination_port", "prefix_ranges", "transport_protocol", "source_type", "source_prefix_ranges",
                "direct_source_prefix_ranges", "source_ports",
            ],
            "envoy.config.listener.v3.Filter": ["name", "typed_config"],
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy": [
                "stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "max_connect_attempts",
                "max_downstream_connection_duration",
            ],
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster": ["clusters"],
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight": ["name", "weight"],
            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst": [],
            "envoy.config.cluster.v3.Cluster": [
                "name", "type", "connect_timeout", "lb_policy", "load_assignment", "dns_refresh_rate",
                "dns_lookup_family", "per_connection_buffer_limit_bytes", "least_request_lb_config",
                "common_lb_config", "metadata", "cleanup_interval", "upstream_bind_config", "eds_cluster_config",
                "typed_extension_protocol_options", "http2_protocol_options",
            ],
            "envoy.config.core.v3.BindConfig": ["socket_options"],
            "envoy.config.core.v3.SocketOption": ["description", "level", "name", "int_value", "state"],
            "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig": ["choice_count"],
            "envoy.config.cluster.v3.Cluster.CommonLbConfig": ["healthy_panic_threshold"],
            "envoy.type.v3.Percent": ["value"],
            "envoy.config.endpoint.v3.ClusterLoadAssignment": ["cluster_name", "endpoints", "policy"],
            "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy": ["overprovisioning_factor"],
            "envoy.config.endpoint.v3.LocalityLbEndpoints": ["locality", "lb_endpoints", "load_balancing_weight", "priority"],
            "envoy.config.endpoint.v3.LbEndpoint": ["endpoint", "health_status", "load_balancing_weight", "metadata"],
            // An empty health_check_config (as Istio sends) changes nothing; its fields would.
            "envoy.config.endpoint.v3.Endpoint": ["address", "hostname", "health_check_config"],
            "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig": [],
            "envoy.config.listener.v3.Listener.DrainType": [],
        ],
        types: [
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
            // Only to tell a gRPC (xDS) cluster to speak HTTP/2, which Sluice's xDS client does anyway.
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        ])
}
