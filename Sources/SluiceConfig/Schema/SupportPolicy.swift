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
        adding: upstreamFields, types: upstreamTypes,
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

// Upstream: circuit breakers, outlier detection, health checks, load balancers
extension SupportPolicy {
    /// Kept apart from the main table and merged into it, so entries for shared messages
    /// (`HeaderValueOption`, `Http2ProtocolOptions`) combine instead of colliding.
    static let upstreamFields: [String: Set<String>] = [
        "envoy.config.cluster.v3.Cluster": [
            "circuit_breakers", "outlier_detection", "health_checks", "ring_hash_lb_config", "maglev_lb_config",
            "load_balancing_policy", "common_http_protocol_options", "protocol_selection",
        ],
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig": ["active_request_bias"],
        // Sluice has no runtime layer: the default value applies, as in Envoy without an override.
        "envoy.config.core.v3.RuntimeDouble": ["default_value", "runtime_key"],
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig": ["minimum_ring_size", "maximum_ring_size", "hash_function"],
        "envoy.config.cluster.v3.Cluster.MaglevLbConfig": ["table_size"],
        "envoy.config.cluster.v3.CircuitBreakers": ["thresholds"],
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds": [
            "priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "track_remaining",
        ],
        "envoy.config.cluster.v3.OutlierDetection": [
            "consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure",
            "split_external_local_origin_errors", "interval", "base_ejection_time", "max_ejection_time",
            "max_ejection_time_jitter", "max_ejection_percent", "always_eject_one_host", "enforcing_consecutive_5xx",
            "enforcing_consecutive_gateway_failure", "enforcing_consecutive_local_origin_failure",
            "successful_active_health_check_uneject_host",
            // Accepted so that 0 can turn these detectors off; a non-zero value is reported by translation.
            "enforcing_success_rate", "enforcing_local_origin_success_rate", "enforcing_failure_percentage",
            "enforcing_failure_percentage_local_origin",
        ],
        "envoy.config.core.v3.HealthCheck": [
            "timeout", "interval", "initial_jitter", "interval_jitter", "interval_jitter_percent", "unhealthy_threshold",
            "healthy_threshold", "http_health_check", "tcp_health_check", "no_traffic_interval",
            "no_traffic_healthy_interval", "unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval",
            "reuse_connection",
        ],
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck": [
            "host", "path", "request_headers_to_add", "request_headers_to_remove", "expected_statuses", "codec_client_type",
        ],
        "envoy.config.core.v3.HealthCheck.TcpHealthCheck": ["send", "receive"],
        "envoy.config.core.v3.HealthCheck.Payload": ["text", "binary"],
        "envoy.type.v3.Int64Range": ["start", "end"],
        "envoy.config.core.v3.HeaderValueOption": ["header", "append", "append_action"],
        "envoy.config.core.v3.HeaderValue": ["key", "value"],
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": [
            "explicit_http_config", "use_downstream_protocol_config", "common_http_protocol_options",
        ],
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig": [
            "http_protocol_options", "http2_protocol_options",
        ],
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig": [
            "http_protocol_options", "http2_protocol_options",
        ],
        "envoy.config.core.v3.HttpProtocolOptions": ["idle_timeout", "max_requests_per_connection"],
        "envoy.config.core.v3.Http1ProtocolOptions": [],
        "envoy.config.core.v3.Http2ProtocolOptions": [
            "max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size",
        ],
        "envoy.config.cluster.v3.LoadBalancingPolicy": ["policies"],
        "envoy.config.cluster.v3.LoadBalancingPolicy.Policy": ["typed_extension_config"],
        "envoy.config.core.v3.TypedExtensionConfig": ["name", "typed_config"],
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin": [],
        "envoy.extensions.load_balancing_policies.random.v3.Random": [],
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest": ["choice_count", "active_request_bias"],
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash": [
            "minimum_ring_size", "maximum_ring_size", "hash_function",
        ],
        "envoy.extensions.load_balancing_policies.maglev.v3.Maglev": ["table_size"],
    ]

    static let upstreamTypes: Set<String> = [
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
        "envoy.extensions.load_balancing_policies.random.v3.Random",
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
        "envoy.extensions.load_balancing_policies.maglev.v3.Maglev",
    ]

    /// The main table with `extra` fields and types merged in.
    init(adding extra: [String: Set<String>], types extraTypes: Set<String>, fields: [String: Set<String>], types: Set<String>) {
        self.init(fields: fields.merging(extra) { $0.union($1) }, types: types.union(extraTypes))
    }
}
