import Foundation
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// Circuit breakers, outlier detection, health checks and upstream HTTP options of a cluster.
extension TranslationContext {
    mutating func circuitBreakers(_ breakers: Envoy_Config_Cluster_V3_CircuitBreakers, path: String) -> CircuitBreakerSettings {
        var settings = CircuitBreakerSettings()
        var seen: Set<Int> = []
        for (index, threshold) in breakers.thresholds.enumerated() {
            let thresholdPath = child(path, "thresholds[\(index)]")
            var limits = CircuitBreakerThresholds()
            if threshold.hasMaxConnections { limits.maxConnections = Int(threshold.maxConnections.value) }
            if threshold.hasMaxPendingRequests { limits.maxPendingRequests = Int(threshold.maxPendingRequests.value) }
            if threshold.hasMaxRequests { limits.maxRequests = Int(threshold.maxRequests.value) }
            if threshold.hasMaxRetries { limits.maxRetries = Int(threshold.maxRetries.value) }
            limits.trackRemaining = threshold.trackRemaining
            if !seen.insert(threshold.priority.rawValue).inserted {
                // Envoy keeps the last entry for a priority; say so rather than guess silently.
                warning(child(thresholdPath, "priority"), "a second threshold for priority \(threshold.priority) replaces the first")
            }
            switch threshold.priority {
            case .default: settings.defaultPriority = limits
            case .high: settings.highPriority = limits
            case .UNRECOGNIZED(let value): invalid(child(thresholdPath, "priority"), "unknown routing priority \(value)")
            }
        }
        return settings
    }

    mutating func outlierDetection(_ detection: Envoy_Config_Cluster_V3_OutlierDetection, path: String) -> OutlierDetectionConfig {
        var config = OutlierDetectionConfig()
        func percent(_ value: Google_Protobuf_UInt32Value, _ field: String, into target: inout Int, context: inout Self) {
            if value.value > 100 {
                context.invalid(child(path, field), "must be a percentage between 0 and 100")
            } else {
                target = Int(value.value)
            }
        }
        if detection.hasConsecutive5Xx { config.consecutive5xx = Int(detection.consecutive5Xx.value) }
        if detection.hasConsecutiveGatewayFailure { config.consecutiveGatewayFailure = Int(detection.consecutiveGatewayFailure.value) }
        if detection.hasConsecutiveLocalOriginFailure {
            config.consecutiveLocalOriginFailure = Int(detection.consecutiveLocalOriginFailure.value)
        }
        config.splitExternalLocalOriginErrors = detection.splitExternalLocalOriginErrors
        if detection.hasInterval {
            if detection.interval.isPositive { config.interval = detection.interval.swiftDuration }
            else { invalid(child(path, "interval"), "must be a positive duration") }
        }
        if detection.hasBaseEjectionTime {
            if detection.baseEjectionTime.isPositive { config.baseEjectionTime = detection.baseEjectionTime.swiftDuration }
            else { invalid(child(path, "base_ejection_time"), "must be a positive duration") }
        }
        if detection.hasMaxEjectionTime {
            if detection.maxEjectionTime.isPositive { config.maxEjectionTime = detection.maxEjectionTime.swiftDuration }
            else { invalid(child(path, "max_ejection_time"), "must be a positive duration") }
        }
        // Envoy rejects a base ejection time above the maximum.
        if config.baseEjectionTime > config.maxEjectionTime, detection.hasMaxEjectionTime {
            invalid(child(path, "base_ejection_time"), "base_ejection_time must not exceed max_ejection_time")
        }
        if detection.hasMaxEjectionTimeJitter { config.maxEjectionTimeJitter = detection.maxEjectionTimeJitter.swiftDuration }
        if detection.hasMaxEjectionPercent { percent(detection.maxEjectionPercent, "max_ejection_percent", into: &config.maxEjectionPercent, context: &self) }
        if detection.hasAlwaysEjectOneHost { config.alwaysEjectOneHost = detection.alwaysEjectOneHost.value }
        if detection.hasEnforcingConsecutive5Xx {
            percent(detection.enforcingConsecutive5Xx, "enforcing_consecutive_5xx", into: &config.enforcingConsecutive5xx, context: &self)
        }
        if detection.hasEnforcingConsecutiveGatewayFailure {
            percent(detection.enforcingConsecutiveGatewayFailure, "enforcing_consecutive_gateway_failure",
                    into: &config.enforcingConsecutiveGatewayFailure, context: &self)
        }
        if detection.hasEnforcingConsecutiveLocalOriginFailure {
            percent(detection.enforcingConsecutiveLocalOriginFailure, "enforcing_consecutive_local_origin_failure",
                    into: &config.enforcingConsecutiveLocalOriginFailure, context: &self)
        }
        if detection.hasSuccessfulActiveHealthCheckUnejectHost {
            config.successfulActiveHealthCheckUnejectHost = detection.successfulActiveHealthCheckUnejectHost.value
        }
        // The statistical detectors are not implemented. Turning one on explicitly is reported;
        // turning it off (0) is accepted. The tuning fields of those detectors are reported by
        // the support check as unsupported fields.
        let statistical: [(Bool, UInt32, String)] = [
            (detection.hasEnforcingSuccessRate, detection.enforcingSuccessRate.value, "enforcing_success_rate"),
            (detection.hasEnforcingLocalOriginSuccessRate, detection.enforcingLocalOriginSuccessRate.value,
             "enforcing_local_origin_success_rate"),
            (detection.hasEnforcingFailurePercentage, detection.enforcingFailurePercentage.value, "enforcing_failure_percentage"),
            (detection.hasEnforcingFailurePercentageLocalOrigin, detection.enforcingFailurePercentageLocalOrigin.value,
             "enforcing_failure_percentage_local_origin"),
        ]
        for (isSet, value, field) in statistical where isSet && value > 0 {
            unsupported(child(path, field),
                        "success-rate and failure-percentage outlier detection are not implemented; set \(field) to 0",
                        feature: "OutlierDetection.\(field)")
        }
        return config
    }

    mutating func healthCheck(_ check: Envoy_Config_Core_V3_HealthCheck, path: String) -> HealthCheckConfig? {
        let before = issues.count
        func required(_ isSet: Bool, _ duration: Google_Protobuf_Duration, _ field: String, context: inout Self) -> Duration {
            guard isSet, duration.isPositive else {
                context.invalid(child(path, field), "a health check needs a positive \(field)")
                return .seconds(1)
            }
            return duration.swiftDuration
        }
        func optional(_ isSet: Bool, _ duration: Google_Protobuf_Duration, _ field: String, context: inout Self) -> Duration? {
            guard isSet else { return nil }
            guard duration.isPositive else {
                context.invalid(child(path, field), "must be a positive duration")
                return nil
            }
            return duration.swiftDuration
        }
        let timeout = required(check.hasTimeout, check.timeout, "timeout", context: &self)
        let interval = required(check.hasInterval, check.interval, "interval", context: &self)
        if !check.hasUnhealthyThreshold { invalid(child(path, "unhealthy_threshold"), "a health check needs unhealthy_threshold") }
        if !check.hasHealthyThreshold { invalid(child(path, "healthy_threshold"), "a health check needs healthy_threshold") }
        let kind: HealthCheckConfig.Kind
        switch check.healthChecker {
        case .httpHealthCheck(let http)?:
            guard let translated = httpHealthCheck(http, path: child(path, "http_health_check")) else { return nil }
            kind = .http(translated)
        case .tcpHealthCheck(let tcp)?:
            let tcpPath = child(path, "tcp_health_check")
            let send = tcp.hasSend ? payload(tcp.send, path: child(tcpPath, "send")) : Data()
            let receive = tcp.receive.enumerated().map { payload($0.element, path: child(tcpPath, "receive[\($0.offset)]")) }
            kind = .tcp(send: send, receive: receive)
        case nil:
            invalid(path, "a health check needs one of http_health_check, tcp_health_check, grpc_health_check or custom_health_check")
            return nil
        default:
            return nil  // grpc and custom checkers are reported by the support check
        }
        var config = HealthCheckConfig(
            kind: kind, timeout: timeout, interval: interval,
            unhealthyThreshold: Int(max(check.unhealthyThreshold.value, 1)),
            healthyThreshold: Int(max(check.healthyThreshold.value, 1)))
        if check.hasInitialJitter { config.initialJitter = check.initialJitter.swiftDuration }
        if check.hasIntervalJitter { config.intervalJitter = check.intervalJitter.swiftDuration }
        config.intervalJitterPercent = Int(check.intervalJitterPercent)
        if let value = optional(check.hasNoTrafficInterval, check.noTrafficInterval, "no_traffic_interval", context: &self) {
            config.noTrafficInterval = value
        }
        config.noTrafficHealthyInterval = optional(
            check.hasNoTrafficHealthyInterval, check.noTrafficHealthyInterval, "no_traffic_healthy_interval", context: &self)
        config.unhealthyInterval = optional(check.hasUnhealthyInterval, check.unhealthyInterval, "unhealthy_interval", context: &self)
        config.unhealthyEdgeInterval = optional(
            check.hasUnhealthyEdgeInterval, check.unhealthyEdgeInterval, "unhealthy_edge_interval", context: &self)
        config.healthyEdgeInterval = optional(
            check.hasHealthyEdgeInterval, check.healthyEdgeInterval, "healthy_edge_interval", context: &self)
        if check.hasReuseConnection { config.reuseConnection = check.reuseConnection.value }
        return hasErrors(since: before) ? nil : config
    }

    private mutating func httpHealthCheck(_ http: Envoy_Config_Core_V3_HealthCheck.HttpHealthCheck, path: String) -> HTTPHealthCheck? {
        guard !http.path.isEmpty else {
            invalid(child(path, "path"), "an HTTP health check needs a path")
            return nil
        }
        var check = HTTPHealthCheck(path: http.path, host: http.host)
        if !http.expectedStatuses.isEmpty {
            var ranges: [Range<Int>] = []
            for (index, range) in http.expectedStatuses.enumerated() {
                // Envoy accepts [100, 600) only.
                guard range.start >= 100, range.end <= 600, range.start < range.end else {
                    invalid(child(path, "expected_statuses[\(index)]"), "must be a non-empty range within [100, 600)")
                    continue
                }
                ranges.append(Int(range.start)..<Int(range.end))
            }
            check.expectedStatuses = ranges
        }
        for (index, option) in http.requestHeadersToAdd.enumerated() {
            let header = option.header
            if header.key.isEmpty {
                invalid(child(path, "request_headers_to_add[\(index)].header.key"), "a header needs a name")
                continue
            }
            let append = option.hasAppend ? option.append.value : option.appendAction != .overwriteIfExistsOrAdd
            check.headers.append(.init(name: header.key.lowercased(), value: header.value, append: append))
        }
        check.requestHeadersToRemove = http.requestHeadersToRemove.map { $0.lowercased() }
        switch http.codecClientType {
        case .http1: break
        case .http2, .http3, .UNRECOGNIZED:
            unsupported(child(path, "codec_client_type"), "health checks speak HTTP/1.1 only",
                        feature: "HttpHealthCheck.codec_client_type=\(http.codecClientType)")
        }
        return check
    }

    private mutating func payload(_ payload: Envoy_Config_Core_V3_HealthCheck.Payload, path: String) -> Data {
        switch payload.payload {
        case .text(let hex)?:
            guard let bytes = hexBytes(hex) else {
                invalid(child(path, "text"), "must be hex digits, two per byte")
                return Data()
            }
            return bytes
        case .binary(let bytes)?:
            return bytes
        case nil:
            return Data()
        }
    }

    /// The router's view of `typed_extension_protocol_options` (HttpProtocolOptions) and the
    /// legacy cluster fields it replaced.
    mutating func upstreamHTTPOptions(_ cluster: Envoy_Config_Cluster_V3_Cluster, path: String) -> UpstreamHTTPOptions {
        var options = UpstreamHTTPOptions()
        if cluster.hasHTTP2ProtocolOptions {
            options.protocolChoice = .http2
            options.http2 = upstreamHTTP2(cluster.http2ProtocolOptions, path: child(path, "http2_protocol_options"))
        }
        if cluster.protocolSelection == .useDownstreamProtocol { options.protocolChoice = .useDownstream }
        if cluster.hasCommonHTTPProtocolOptions {
            commonHTTPOptions(cluster.commonHTTPProtocolOptions, path: child(path, "common_http_protocol_options"), into: &options)
        }
        let key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        guard let any = cluster.typedExtensionProtocolOptions[key] else { return options }
        let optionsPath = child(path, "typed_extension_protocol_options[\(key)]")
        guard let typed = try? Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions(unpackingAny: any) else {
            invalid(optionsPath, "expected \(key)")
            return options
        }
        if typed.hasCommonHTTPProtocolOptions {
            commonHTTPOptions(typed.commonHTTPProtocolOptions, path: child(optionsPath, "common_http_protocol_options"), into: &options)
        }
        switch typed.upstreamProtocolOptions {
        case .explicitHTTPConfig(let explicit)?:
            let explicitPath = child(optionsPath, "explicit_http_config")
            switch explicit.protocolConfig {
            case .httpProtocolOptions?:
                options.protocolChoice = .http1
            case .http2ProtocolOptions(let http2)?:
                options.protocolChoice = .http2
                options.http2 = upstreamHTTP2(http2, path: child(explicitPath, "http2_protocol_options"))
            case .http3ProtocolOptions?:
                unsupported(child(explicitPath, "http3_protocol_options"), "HTTP/3 upstreams are not supported")
            case nil:
                invalid(explicitPath, "explicit_http_config needs a protocol")
            }
        case .useDownstreamProtocolConfig(let downstream)?:
            options.protocolChoice = .useDownstream
            if downstream.hasHTTP2ProtocolOptions {
                options.http2 = upstreamHTTP2(
                    downstream.http2ProtocolOptions, path: child(optionsPath, "use_downstream_protocol_config.http2_protocol_options"))
            }
        case .autoConfig?:
            unsupported(child(optionsPath, "auto_config"), "ALPN-based protocol selection needs TLS, which upstreams do not have",
                        feature: "HttpProtocolOptions.auto_config")
        case nil:
            break
        }
        return options
    }

    private mutating func commonHTTPOptions(
        _ common: Envoy_Config_Core_V3_HttpProtocolOptions, path: String, into options: inout UpstreamHTTPOptions
    ) {
        if common.hasIdleTimeout {
            // Zero disables the idle timeout, as in Envoy.
            options.idleTimeout = common.idleTimeout.isPositive ? common.idleTimeout.swiftDuration : nil
        }
        if common.hasMaxRequestsPerConnection {
            let value = Int(common.maxRequestsPerConnection.value)
            options.maxRequestsPerConnection = value == 0 ? nil : value
        }
    }

    private mutating func upstreamHTTP2(_ http2: Envoy_Config_Core_V3_Http2ProtocolOptions, path: String) -> HTTP2ProtocolOptions {
        var settings = HTTP2ProtocolOptions()
        if http2.hasMaxConcurrentStreams {
            let value = http2.maxConcurrentStreams.value
            if value < 1 || value > 2_147_483_647 { invalid(child(path, "max_concurrent_streams"), "must be between 1 and 2147483647") }
            else { settings.maxConcurrentStreams = Int(value) }
        }
        if http2.hasInitialStreamWindowSize {
            let value = http2.initialStreamWindowSize.value
            if value < 65535 || value > 2_147_483_647 { invalid(child(path, "initial_stream_window_size"), "must be between 65535 and 2147483647") }
            else { settings.initialStreamWindowSize = Int(value) }
        }
        if http2.hasInitialConnectionWindowSize {
            let value = http2.initialConnectionWindowSize.value
            if value < 65535 || value > 2_147_483_647 {
                invalid(child(path, "initial_connection_window_size"), "must be between 65535 and 2147483647")
            } else {
                settings.initialConnectionWindowSize = Int(value)
            }
        }
        return settings
    }
}

/// Bytes from hex digits (Envoy's health-check `text` payloads); nil when malformed.
private func hexBytes(_ text: String) -> Data? {
    func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes = Data(capacity: digits.count / 2)
    var index = 0
    while index < digits.count {
        guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
    }
    return bytes
}
