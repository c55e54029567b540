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
        fields: baseFields.merging(httpFields) { $0.union($1) }.merging(upstreamFields) { $0.union($1) },
        types: baseTypes.union(httpTypes).union(upstreamTypes))

    /// HTTP: the connection manager, route tables and the HTTP filters Sluice implements. Kept
    /// apart and merged by union so an entry shared with another block cannot trap as a
    /// duplicate dictionary-literal key.
    static let httpFields: [String: Set<String>] = [
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": [
            "codec_type", "stat_prefix", "rds", "route_config", "http_filters", "common_http_protocol_options",
            "http2_protocol_options", "server_name", "server_header_transformation", "max_request_headers_kb",
            "stream_idle_timeout", "request_timeout", "request_headers_timeout", "drain_timeout", "delayed_close_timeout",
            "access_log", "use_remote_address", "xff_num_trusted_hops", "internal_address_config", "skip_xff_append",
            "via", "generate_request_id", "preserve_external_request_id", "upgrade_configs", "normalize_path",
            "merge_slashes", "path_with_escaped_slashes_action", "request_id_extension",
        ],
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": [
            "upgrade_type", "enabled",
        ],
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig": [
            "cidr_ranges",
        ],
        "envoy.extensions.filters.network.http_connection_manager.v3.Rds": ["config_source", "route_config_name"],
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter": [
            "name", "typed_config", "is_optional", "disabled",
        ],
        // The UUID request id is Envoy's default; its two options only matter to tracing.
        "envoy.extensions.filters.network.http_connection_manager.v3.RequestIDExtension": ["typed_config"],
        "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig": ["pack_trace_reason", "use_request_id_for_trace_sampling"],
        "envoy.config.core.v3.HttpProtocolOptions": [
            "idle_timeout", "max_connection_duration", "max_headers_count", "max_requests_per_connection",
        ],
        "envoy.config.core.v3.Http2ProtocolOptions": [
            "max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size",
        ],
        "envoy.config.accesslog.v3.AccessLog": ["name", "typed_config"],
        "envoy.extensions.access_loggers.file.v3.FileAccessLog": ["path", "format", "json_format", "log_format"],
        "envoy.config.core.v3.SubstitutionFormatString": ["text_format", "text_format_source", "json_format"],
        "envoy.config.core.v3.DataSource": ["inline_bytes", "inline_string"],
        // Route tables.
        "envoy.config.route.v3.RouteConfiguration": [
            "name", "virtual_hosts", "internal_only_headers", "response_headers_to_add", "response_headers_to_remove",
            "request_headers_to_add", "request_headers_to_remove", "most_specific_header_mutations_wins",
            "validate_clusters", "metadata", "max_direct_response_body_size_bytes",
        ],
        "envoy.config.route.v3.VirtualHost": [
            "name", "domains", "routes", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
            "response_headers_to_remove", "cors", "typed_per_filter_config", "include_request_attempt_count",
            "include_attempt_count_in_response", "retry_policy", "metadata",
        ],
        // `decorator` names the tracing span and, when tracing, sets x-envoy-decorator-operation;
        // Envoy applies it only for an HCM with `tracing`, which Sluice rejects, so it changes nothing.
        "envoy.config.route.v3.Route": [
            "name", "match", "route", "redirect", "direct_response", "non_forwarding_action", "typed_per_filter_config",
            "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
            "metadata", "decorator",
        ],
        "envoy.config.route.v3.Decorator": ["operation", "propagate"],
        "envoy.config.route.v3.RouteMatch": [
            "prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "runtime_fraction", "headers",
            "query_parameters", "grpc",
        ],
        "envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions": [],
        "envoy.config.core.v3.RuntimeFractionalPercent": ["default_value", "runtime_key"],
        "envoy.type.v3.FractionalPercent": ["numerator", "denominator"],
        "envoy.type.matcher.v3.RegexMatcher": ["google_re2", "regex"],
        "envoy.type.matcher.v3.RegexMatcher.GoogleRE2": [],
        "envoy.type.matcher.v3.RegexMatchAndSubstitute": ["pattern", "substitution"],
        "envoy.type.matcher.v3.StringMatcher": ["exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"],
        "envoy.type.matcher.v3.PathMatcher": ["path"],
        "envoy.config.route.v3.HeaderMatcher": [
            "name", "exact_match", "safe_regex_match", "range_match", "present_match", "prefix_match", "suffix_match",
            "contains_match", "string_match", "invert_match", "treat_missing_header_as_empty",
        ],
        "envoy.type.v3.Int64Range": ["start", "end"],
        "envoy.type.v3.Int32Range": ["start", "end"],
        "envoy.config.route.v3.QueryParameterMatcher": ["name", "string_match", "present_match"],
        "envoy.config.route.v3.RouteAction": [
            "cluster", "cluster_header", "weighted_clusters", "cluster_not_found_response_code", "prefix_rewrite",
            "regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "host_rewrite_header", "host_rewrite_path_regex",
            "append_x_forwarded_host", "timeout", "idle_timeout", "retry_policy", "request_mirror_policies", "hash_policy",
            "max_stream_duration", "upgrade_configs",
        ],
        "envoy.config.route.v3.WeightedCluster": ["clusters", "total_weight", "header_name"],
        "envoy.config.route.v3.WeightedCluster.ClusterWeight": [
            "name", "weight", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
            "response_headers_to_remove", "typed_per_filter_config",
        ],
        "envoy.config.route.v3.RetryPolicy": [
            "retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout", "retry_host_predicate",
            "host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off", "retriable_headers",
        ],
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate": ["name", "typed_config"],
        "envoy.config.route.v3.RetryPolicy.RetryBackOff": ["base_interval", "max_interval"],
        "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate": [],
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy": ["cluster", "runtime_fraction"],
        "envoy.config.route.v3.RouteAction.HashPolicy": ["header", "cookie", "connection_properties", "query_parameter", "terminal"],
        "envoy.config.route.v3.RouteAction.HashPolicy.Header": ["header_name"],
        "envoy.config.route.v3.RouteAction.HashPolicy.Cookie": ["name"],
        "envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties": ["source_ip"],
        "envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter": ["name"],
        "envoy.config.route.v3.RouteAction.MaxStreamDuration": [
            "max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset",
        ],
        "envoy.config.route.v3.RouteAction.UpgradeConfig": ["upgrade_type", "enabled"],
        "envoy.config.route.v3.RedirectAction": [
            "https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect", "prefix_rewrite",
            "regex_rewrite", "response_code", "strip_query",
        ],
        "envoy.config.route.v3.DirectResponseAction": ["status", "body"],
        "envoy.config.route.v3.NonForwardingAction": [],
        "envoy.config.core.v3.HeaderValueOption": ["header", "append", "append_action", "keep_empty_value"],
        "envoy.config.core.v3.HeaderValue": ["key", "value", "raw_value"],
        "envoy.config.route.v3.CorsPolicy": [
            "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers", "max_age", "allow_credentials",
            "filter_enabled", "shadow_enabled", "allow_private_network_access", "forward_not_matching_preflights",
        ],
        "envoy.config.route.v3.FilterConfig": ["config", "is_optional", "disabled"],
        // HTTP filters.
        "envoy.extensions.filters.http.router.v3.Router": ["suppress_envoy_headers", "respect_expected_rq_timeout"],
        "envoy.extensions.filters.http.cors.v3.Cors": [],
        "envoy.extensions.filters.http.cors.v3.CorsPolicy": [
            "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers", "max_age", "allow_credentials",
            "filter_enabled", "shadow_enabled", "allow_private_network_access", "forward_not_matching_preflights",
        ],
        "envoy.extensions.filters.http.fault.v3.HTTPFault": [
            "delay", "abort", "upstream_cluster", "headers", "downstream_nodes", "max_active_faults",
        ],
        "envoy.extensions.filters.common.fault.v3.FaultDelay": ["fixed_delay", "header_delay", "percentage"],
        "envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay": [],
        "envoy.extensions.filters.http.fault.v3.FaultAbort": ["http_status", "grpc_status", "header_abort", "percentage"],
        "envoy.extensions.filters.http.fault.v3.FaultAbort.HeaderAbort": [],
        "envoy.extensions.filters.http.rbac.v3.RBAC": ["rules", "shadow_rules", "rules_stat_prefix", "shadow_rules_stat_prefix"],
        "envoy.extensions.filters.http.rbac.v3.RBACPerRoute": ["rbac"],
        "envoy.config.rbac.v3.RBAC": ["action", "policies"],
        "envoy.config.rbac.v3.Policy": ["permissions", "principals"],
        "envoy.config.rbac.v3.Permission": [
            "and_rules", "or_rules", "any", "header", "url_path", "destination_ip", "destination_port",
            "destination_port_range", "not_rule", "requested_server_name",
        ],
        "envoy.config.rbac.v3.Permission.Set": ["rules"],
        "envoy.config.rbac.v3.Principal": [
            "and_ids", "or_ids", "any", "authenticated", "source_ip", "direct_remote_ip", "remote_ip", "header", "url_path",
            "not_id",
        ],
        "envoy.config.rbac.v3.Principal.Set": ["ids"],
        "envoy.config.rbac.v3.Principal.Authenticated": ["principal_name"],
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit": [
            "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
            "request_headers_to_add_when_not_enforced", "response_headers_to_add",
            "local_rate_limit_per_downstream_connection", "enable_x_ratelimit_headers",
        ],
        "envoy.type.v3.TokenBucket": ["max_tokens", "tokens_per_fill", "fill_interval"],
        "envoy.type.v3.HttpStatus": ["code"],
    ]

    static let httpTypes: Set<String> = [
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "envoy.extensions.filters.http.router.v3.Router",
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "envoy.extensions.filters.http.cors.v3.Cors",
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "envoy.config.route.v3.FilterConfig",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
        "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
    ]

    static let baseFields: [String: Set<String>] = [
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
            "envoy.config.cluster.v3.Cluster.CommonLbConfig": ["healthy_panic_threshold", "locality_weighted_lb_config"],
            "envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig": [],
            "envoy.type.v3.Percent": ["value"],
            "envoy.config.endpoint.v3.ClusterLoadAssignment": ["cluster_name", "endpoints", "policy"],
            "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy": ["overprovisioning_factor"],
            "envoy.config.endpoint.v3.LocalityLbEndpoints": ["locality", "lb_endpoints", "load_balancing_weight", "priority"],
            "envoy.config.endpoint.v3.LbEndpoint": ["endpoint", "health_status", "load_balancing_weight", "metadata"],
            // An empty health_check_config (as Istio sends) changes nothing; its fields would.
            "envoy.config.endpoint.v3.Endpoint": ["address", "hostname", "health_check_config"],
            "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig": [],
            "envoy.config.listener.v3.Listener.DrainType": [],
        ]

    static let baseTypes: Set<String> = [
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
            // Only to tell a gRPC (xDS) cluster to speak HTTP/2, which Sluice's xDS client does anyway.
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        ]
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
}
