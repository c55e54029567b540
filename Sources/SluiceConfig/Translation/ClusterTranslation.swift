import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

extension TranslationContext {
    /// Translates one cluster; nil when it has errors (they are recorded).
    mutating func cluster(_ cluster: Envoy_Config_Cluster_V3_Cluster, path: String) -> ClusterConfig? {
        let before = issues.count
        if cluster.name.isEmpty { invalid(child(path, "name"), "a cluster needs a name") }

        var connectTimeout: Duration = .seconds(5)
        if cluster.hasConnectTimeout {
            if cluster.connectTimeout.isPositive {
                connectTimeout = cluster.connectTimeout.swiftDuration
            } else {
                invalid(child(path, "connect_timeout"), "must be a positive duration")
            }
        }

        let discovery = discoveryType(cluster, path: path)
        let loadBalancing = loadBalancingPolicy(cluster, discovery: discovery, path: path)

        var assignment = LoadAssignment()
        if cluster.hasLoadAssignment {
            if case .originalDestination? = discovery {
                invalid(child(path, "load_assignment"), "ORIGINAL_DST clusters must have no load assignment configured")
            } else if case .eds? = discovery {
                warning(child(path, "load_assignment"), "EDS clusters take their endpoints from EDS; load_assignment is not used")
            } else {
                let allowNames: Bool
                if case .strictDNS? = discovery { allowNames = true } else { allowNames = false }
                assignment = loadAssignment(
                    cluster.loadAssignment, path: child(path, "load_assignment"), allowHostnames: allowNames)
            }
        }

        var panicThreshold = 50.0
        if cluster.hasCommonLbConfig, cluster.commonLbConfig.hasHealthyPanicThreshold {
            panicThreshold = cluster.commonLbConfig.healthyPanicThreshold.value
            if panicThreshold < 0 || panicThreshold > 100 {
                invalid(child(path, "common_lb_config.healthy_panic_threshold.value"), "must be between 0 and 100")
            }
        }

        var localityWeighted = false
        if case .localityWeightedLbConfig? = cluster.commonLbConfig.localityConfigSpecifier {
            localityWeighted = true
            validateLocalityWeightSums(assignment, path: child(path, "load_assignment.endpoints"))
        }

        let mark = cluster.hasUpstreamBindConfig
            ? upstreamMark(cluster.upstreamBindConfig, path: child(path, "upstream_bind_config")) : nil

        let breakers = cluster.hasCircuitBreakers
            ? circuitBreakers(cluster.circuitBreakers, path: child(path, "circuit_breakers")) : CircuitBreakerSettings()
        let outliers = cluster.hasOutlierDetection
            ? outlierDetection(cluster.outlierDetection, path: child(path, "outlier_detection")) : nil
        let checks = cluster.healthChecks.enumerated().compactMap {
            healthCheck($0.element, path: child(path, "health_checks[\($0.offset)]"))
        }
        let http = upstreamHTTPOptions(cluster, path: path)
        var bias = 1.0
        if case .leastRequestLbConfig(let config)? = cluster.lbConfig, config.hasActiveRequestBias {
            bias = config.activeRequestBias.defaultValue
            if bias < 0 { invalid(child(path, "least_request_lb_config.active_request_bias"), "must not be negative") }
        }

        guard let discovery, let loadBalancing, !hasErrors(since: before) else { return nil }
        return ClusterConfig(
            name: cluster.name,
            discovery: discovery,
            connectTimeout: connectTimeout,
            loadBalancing: loadBalancing,
            loadAssignment: assignment,
            perConnectionBufferLimitBytes: cluster.hasPerConnectionBufferLimitBytes
                ? Int(cluster.perConnectionBufferLimitBytes.value) : 1 << 20,
            healthyPanicThresholdPercent: panicThreshold,
            upstreamMark: mark,
            circuitBreakers: breakers,
            outlierDetection: outliers,
            healthChecks: checks,
            upstreamHTTP: http,
            leastRequestActiveRequestBias: bias,
            localityWeighted: localityWeighted)
    }

    /// Envoy refuses a locality-weighted cluster whose locality weights at one priority add up
    /// to more than a 32-bit weight can hold.
    private mutating func validateLocalityWeightSums(_ assignment: LoadAssignment, path: String) {
        var sums: [Int: UInt64] = [:]
        for locality in assignment.localities {
            sums[locality.priority, default: 0] += UInt64(locality.weight ?? 0)
        }
        for (priority, sum) in sums.sorted(by: { $0.key < $1.key }) where sum > UInt64(UInt32.max) {
            invalid(path, "the sum of the locality weights at priority \(priority) (\(sum)) exceeds \(UInt32.max)")
        }
    }

    /// `SO_MARK` (level SOL_SOCKET 1, name 36) set before connect is the one socket option
    /// upstream connections support: it is how a proxy keeps its own traffic out of capture.
    private mutating func upstreamMark(_ bind: Envoy_Config_Core_V3_BindConfig, path: String) -> UInt32? {
        var mark: UInt32?
        for (index, option) in bind.socketOptions.enumerated() {
            let optionPath = child(path, "socket_options[\(index)]")
            guard option.level == 1, option.name == 36 else {
                unsupported(optionPath, "only SO_MARK (level 1, name 36) is supported on upstream sockets",
                            feature: "SocketOption(level \(option.level), name \(option.name))")
                continue
            }
            guard case .intValue(let value)? = option.value, let fitting = UInt32(exactly: value) else {
                invalid(optionPath, "SO_MARK needs an int_value between 0 and 4294967295")
                continue
            }
            if option.state != .statePrebind {
                unsupported(child(optionPath, "state"), "SO_MARK must be set before connect (STATE_PREBIND)")
            }
            mark = fitting
        }
        return mark
    }

    private mutating func discoveryType(_ cluster: Envoy_Config_Cluster_V3_Cluster, path: String) -> ClusterConfig.Discovery? {
        guard case .type(let type)? = cluster.clusterDiscoveryType else {
            if cluster.clusterDiscoveryType == nil { return .staticEndpoints }
            return nil  // cluster_type: reported by the schema check
        }
        switch type {
        case .static:
            return .staticEndpoints
        case .strictDns:
            var refresh: Duration = .seconds(5)
            if cluster.hasDnsRefreshRate {
                let rate = cluster.dnsRefreshRate.swiftDuration
                if rate < .milliseconds(1) {
                    invalid(child(path, "dns_refresh_rate"), "must be at least 1ms")
                } else {
                    refresh = rate
                }
            }
            let family: DNSLookupFamily
            switch cluster.dnsLookupFamily {
            case .auto: family = .auto
            case .v4Only: family = .v4Only
            case .v6Only: family = .v6Only
            case .v4Preferred: family = .v4Preferred
            case .all: family = .all
            case .UNRECOGNIZED(let value):
                invalid(child(path, "dns_lookup_family"), "unknown lookup family \(value)")
                return nil
            }
            return .strictDNS(refreshRate: refresh, lookupFamily: family, respectTTL: false)
        case .originalDst:
            var cleanup: Duration = .seconds(5)
            if cluster.hasCleanupInterval {
                if cluster.cleanupInterval.isPositive {
                    cleanup = cluster.cleanupInterval.swiftDuration
                } else {
                    invalid(child(path, "cleanup_interval"), "must be a positive duration")
                }
            }
            return .originalDestination(cleanupInterval: cleanup)
        case .logicalDns:
            unsupported(child(path, "type"), "LOGICAL_DNS clusters are not supported (use STRICT_DNS)",
                        feature: "Cluster.type=LOGICAL_DNS")
        case .eds:
            let config = cluster.edsClusterConfig
            guard cluster.hasEdsClusterConfig, case .ads? = config.edsConfig.configSourceSpecifier else {
                unsupported(child(path, "eds_cluster_config.eds_config"),
                            "EDS clusters need eds_config { ads: {} }; other config sources are not supported",
                            feature: "EdsClusterConfig.eds_config (non-ADS)")
                return nil
            }
            return .eds(serviceName: config.serviceName.isEmpty ? cluster.name : config.serviceName)
        case .UNRECOGNIZED(let value):
            invalid(child(path, "type"), "unknown cluster type \(value)")
        }
        return nil
    }

    private mutating func loadBalancingPolicy(
        _ cluster: Envoy_Config_Cluster_V3_Cluster, discovery: ClusterConfig.Discovery?, path: String
    ) -> LoadBalancingPolicy? {
        let isOriginalDestination: Bool
        if case .originalDestination? = discovery { isOriginalDestination = true } else { isOriginalDestination = false }
        let policyPath = child(path, "lb_policy")
        if isOriginalDestination, cluster.lbPolicy != .clusterProvided {
            invalid(policyPath, "only CLUSTER_PROVIDED is allowed with cluster type ORIGINAL_DST")
            return nil
        }
        // Envoy: a typed load_balancing_policy wins over lb_policy.
        if cluster.hasLoadBalancingPolicy, !isOriginalDestination {
            return typedLoadBalancingPolicy(cluster, path: child(path, "load_balancing_policy"))
        }
        switch cluster.lbPolicy {
        case .roundRobin:
            return .roundRobin
        case .random:
            return .random
        case .leastRequest:
            var choices = 2
            if case .leastRequestLbConfig(let config)? = cluster.lbConfig, config.hasChoiceCount {
                choices = Int(config.choiceCount.value)
                if choices < 2 { invalid(child(path, "least_request_lb_config.choice_count"), "must be at least 2") }
            }
            return .leastRequest(choiceCount: choices)
        case .clusterProvided:
            if !isOriginalDestination {
                invalid(policyPath, "CLUSTER_PROVIDED is only valid with cluster type ORIGINAL_DST")
                return nil
            }
            return .clusterProvided
        case .ringHash:
            var settings = RingHashSettings()
            if case .ringHashLbConfig(let config)? = cluster.lbConfig {
                let configPath = child(path, "ring_hash_lb_config")
                if config.hasMinimumRingSize { settings.minimumRingSize = Int(clamping: config.minimumRingSize.value) }
                if config.hasMaximumRingSize { settings.maximumRingSize = Int(clamping: config.maximumRingSize.value) }
                if config.hashFunction != .xxHash {
                    unsupported(child(configPath, "hash_function"), "only XX_HASH ring hashing is supported",
                                feature: "RingHashLbConfig.hash_function=\(config.hashFunction)")
                }
                return validRingHash(settings, path: configPath)
            }
            return .ringHash(settings)
        case .maglev:
            var size = LoadBalancingPolicy.defaultMaglevTableSize
            if case .maglevLbConfig(let config)? = cluster.lbConfig, config.hasTableSize {
                size = Int(clamping: config.tableSize.value)
            }
            return validMaglev(tableSize: size, path: child(path, "maglev_lb_config.table_size"))
        case .loadBalancingPolicyConfig:
            return typedLoadBalancingPolicy(cluster, path: child(path, "load_balancing_policy"))
        case .UNRECOGNIZED(let value):
            invalid(policyPath, "unknown load balancing policy \(value)")
        }
        return nil
    }

    private mutating func validRingHash(_ settings: RingHashSettings, path: String) -> LoadBalancingPolicy? {
        // Envoy's limits: both sizes at most 8M, the minimum not above the maximum.
        let limit = 8_388_608
        if settings.minimumRingSize < 1 || settings.minimumRingSize > limit {
            invalid(child(path, "minimum_ring_size"), "must be between 1 and \(limit)")
            return nil
        }
        if settings.maximumRingSize < 1 || settings.maximumRingSize > limit {
            invalid(child(path, "maximum_ring_size"), "must be between 1 and \(limit)")
            return nil
        }
        if settings.minimumRingSize > settings.maximumRingSize {
            invalid(child(path, "minimum_ring_size"), "minimum_ring_size (\(settings.minimumRingSize)) must not exceed maximum_ring_size (\(settings.maximumRingSize))")
            return nil
        }
        return .ringHash(settings)
    }

    private mutating func validMaglev(tableSize: Int, path: String) -> LoadBalancingPolicy? {
        // The table must have a prime size below 5000011, as in Envoy.
        guard tableSize > 1, tableSize <= 5_000_011, Self.isPrime(tableSize) else {
            invalid(path, "must be a prime number no larger than 5000011, got \(tableSize)")
            return nil
        }
        return .maglev(tableSize: tableSize)
    }

    static func isPrime(_ value: Int) -> Bool {
        if value < 2 { return false }
        if value < 4 { return true }
        if value % 2 == 0 { return false }
        var divisor = 3
        while divisor * divisor <= value {
            if value % divisor == 0 { return false }
            divisor += 2
        }
        return true
    }

    /// `load_balancing_policy`: the first listed policy this build knows, as Envoy does.
    private mutating func typedLoadBalancingPolicy(_ cluster: Envoy_Config_Cluster_V3_Cluster, path: String) -> LoadBalancingPolicy? {
        for (index, policy) in cluster.loadBalancingPolicy.policies.enumerated() {
            let any = policy.typedExtensionConfig.typedConfig
            let policyPath = child(path, "policies[\(index)].typed_extension_config.typed_config")
            if (try? Envoy_Extensions_LoadBalancingPolicies_RoundRobin_V3_RoundRobin(unpackingAny: any)) != nil {
                return .roundRobin
            }
            if (try? Envoy_Extensions_LoadBalancingPolicies_Random_V3_Random(unpackingAny: any)) != nil {
                return .random
            }
            if let config = try? Envoy_Extensions_LoadBalancingPolicies_LeastRequest_V3_LeastRequest(unpackingAny: any) {
                let choices = config.hasChoiceCount ? Int(config.choiceCount.value) : 2
                if choices < 2 { invalid(child(policyPath, "choice_count"), "must be at least 2") }
                return .leastRequest(choiceCount: choices)
            }
            if let config = try? Envoy_Extensions_LoadBalancingPolicies_RingHash_V3_RingHash(unpackingAny: any) {
                var settings = RingHashSettings()
                if config.hasMinimumRingSize { settings.minimumRingSize = Int(clamping: config.minimumRingSize.value) }
                if config.hasMaximumRingSize { settings.maximumRingSize = Int(clamping: config.maximumRingSize.value) }
                if config.hashFunction == .murmurHash2 {
                    unsupported(child(policyPath, "hash_function"), "only XX_HASH ring hashing is supported",
                                feature: "RingHash.hash_function=MURMUR_HASH_2")
                }
                return validRingHash(settings, path: policyPath)
            }
            if let config = try? Envoy_Extensions_LoadBalancingPolicies_Maglev_V3_Maglev(unpackingAny: any) {
                let size = config.hasTableSize ? Int(clamping: config.tableSize.value) : LoadBalancingPolicy.defaultMaglevTableSize
                return validMaglev(tableSize: size, path: child(policyPath, "table_size"))
            }
        }
        unsupported(path, "none of the listed load balancing policies is supported (round_robin, random, least_request, ring_hash, maglev are)",
                    feature: "Cluster.load_balancing_policy")
        return nil
    }

    /// Endpoints of a `ClusterLoadAssignment`.
    mutating func loadAssignment(
        _ assignment: Envoy_Config_Endpoint_V3_ClusterLoadAssignment, path: String, allowHostnames: Bool
    ) -> LoadAssignment {
        var result = LoadAssignment()
        if assignment.hasPolicy, assignment.policy.hasOverprovisioningFactor {
            let factor = assignment.policy.overprovisioningFactor.value
            if factor == 0 {
                invalid(child(path, "policy.overprovisioning_factor"), "must be greater than 0")
            } else {
                result.overprovisioningFactor = Double(factor) / 100
            }
        }
        for (localityIndex, group) in assignment.endpoints.enumerated() {
            let groupPath = child(path, "endpoints[\(localityIndex)]")
            var endpoints: [Endpoint] = []
            for (index, lbEndpoint) in group.lbEndpoints.enumerated() {
                let endpointPath = child(groupPath, "lb_endpoints[\(index)]")
                if let endpoint = endpoint(lbEndpoint, path: endpointPath, allowHostnames: allowHostnames) {
                    endpoints.append(endpoint)
                }
            }
            var weight: UInt32?
            if group.hasLoadBalancingWeight {
                if group.loadBalancingWeight.value < 1 {
                    invalid(child(groupPath, "load_balancing_weight"), "must be at least 1")
                }
                // Envoy records a locality's weight only for an entry that names its locality.
                if group.hasLocality { weight = group.loadBalancingWeight.value }
            }
            result.localities.append(LocalityEndpoints(
                locality: Locality(region: group.locality.region, zone: group.locality.zone, subZone: group.locality.subZone),
                priority: Int(group.priority),
                weight: weight,
                endpoints: endpoints))
        }
        return result
    }

    private mutating func endpoint(
        _ lbEndpoint: Envoy_Config_Endpoint_V3_LbEndpoint, path: String, allowHostnames: Bool
    ) -> Endpoint? {
        guard case .endpoint(let endpoint)? = lbEndpoint.hostIdentifier else {
            if lbEndpoint.hostIdentifier == nil { invalid(child(path, "endpoint"), "an endpoint is required") }
            return nil
        }
        let addressPath = child(path, "endpoint.address")
        if case .pipe(let pipe)? = endpoint.address.address {
            return Endpoint(address: .pipe(path: pipe.path))
        }
        guard case .socketAddress(let socket)? = endpoint.address.address else {
            if endpoint.address.address == nil {
                invalid(addressPath, "an endpoint address is required")
            } else {
                unsupported(addressPath, "endpoints must be socket addresses or pipes")
            }
            return nil
        }
        let socketPath = child(addressPath, "socket_address")
        var address: EndpointAddress
        if let ip = IPAddress(socket.address) {
            guard let port = port(socket, path: socketPath) else { return nil }
            address = .ip(SocketEndpoint(address: ip, port: port))
        } else if allowHostnames, !socket.address.isEmpty {
            guard let port = port(socket, path: socketPath) else { return nil }
            address = .hostname(socket.address, port: port)
        } else {
            invalid(child(socketPath, "address"), "malformed IP address: \"\(socket.address)\"")
            return nil
        }
        if socket.protocol != .tcp { unsupported(child(socketPath, "protocol"), "only TCP is supported") }
        var weight: UInt32 = 1
        if lbEndpoint.hasLoadBalancingWeight {
            weight = lbEndpoint.loadBalancingWeight.value
            if weight < 1 { invalid(child(path, "load_balancing_weight"), "must be at least 1") }
        }
        let health: HealthStatus
        switch lbEndpoint.healthStatus {
        case .unknown: health = .unknown
        case .healthy: health = .healthy
        case .unhealthy: health = .unhealthy
        case .draining: health = .draining
        case .timeout: health = .timeout
        case .degraded: health = .degraded
        case .UNRECOGNIZED(let value):
            invalid(child(path, "health_status"), "unknown health status \(value)")
            return nil
        }
        return Endpoint(address: address, weight: max(weight, 1), health: health)
    }
}
