import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// `envoy.filters.network.http_connection_manager`, with Envoy 1.40's defaults.
extension TranslationContext {
    static let httpConnectionManagerType =
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    static let fileAccessLogType = "envoy.extensions.access_loggers.file.v3.FileAccessLog"

    mutating func httpConnectionManager(
        _ hcm: Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager, path: String
    ) -> HTTPConnectionManagerConfig? {
        let before = issues.count
        if hcm.statPrefix.isEmpty { invalid(child(path, "stat_prefix"), "stat_prefix is required") }
        var codec = HTTPConnectionManagerConfig.CodecType.auto
        switch hcm.codecType {
        case .auto: codec = .auto
        case .http1: codec = .http1
        case .http2: codec = .http2
        case .http3:
            unsupported(child(path, "codec_type"), "HTTP/3 (QUIC) is not supported", feature: "HttpConnectionManager.codec_type=HTTP3")
        case .UNRECOGNIZED(let value): invalid(child(path, "codec_type"), "unknown codec type \(value)")
        }

        var routes: HTTPConnectionManagerConfig.RouteSource?
        switch hcm.routeSpecifier {
        case .routeConfig(let config)?:
            routes = routeConfiguration(config, path: child(path, "route_config"), inline: true).map { .inline($0) }
        case .rds(let rds)?:
            let rdsPath = child(path, "rds")
            if rds.routeConfigName.isEmpty {
                invalid(child(rdsPath, "route_config_name"), "route_config_name is required")
            } else if !rds.hasConfigSource {
                invalid(child(rdsPath, "config_source"), "config_source is required")
            } else if case .ads? = rds.configSource.configSourceSpecifier {
                routes = .rds(name: rds.routeConfigName)
            } else {
                unsupported(child(rdsPath, "config_source"), "only { ads: {} } config sources are supported",
                            feature: "ConfigSource (non-ADS)")
            }
        case .scopedRoutes?:
            break  // reported by the support check
        case nil:
            invalid(path, "HttpConnectionManager needs route_config, rds or scoped_routes")
        }

        let filters = httpFilters(hcm.httpFilters, path: child(path, "http_filters"))
        var config = HTTPConnectionManagerConfig(statPrefix: hcm.statPrefix, codecType: codec, routes: routes ?? .rds(name: ""))
        config.httpFilters = filters
        config.useRemoteAddress = hcm.hasUseRemoteAddress && hcm.useRemoteAddress.value
        config.xffNumTrustedHops = Int(hcm.xffNumTrustedHops)
        config.skipXFFAppend = hcm.skipXffAppend
        config.via = hcm.via.isEmpty ? nil : hcm.via
        config.generateRequestID = hcm.hasGenerateRequestID ? hcm.generateRequestID.value : true
        config.preserveExternalRequestID = hcm.preserveExternalRequestID
        config.serverName = hcm.serverName.isEmpty ? "envoy" : hcm.serverName
        switch hcm.serverHeaderTransformation {
        case .overwrite: config.serverHeaderTransformation = .overwrite
        case .appendIfAbsent: config.serverHeaderTransformation = .appendIfAbsent
        case .passThrough: config.serverHeaderTransformation = .passThrough
        case .UNRECOGNIZED(let value):
            invalid(child(path, "server_header_transformation"), "unknown transformation \(value)")
        }
        config.streamIdleTimeout = optionalDuration(hcm.streamIdleTimeout, present: hcm.hasStreamIdleTimeout, default: .seconds(300))
        config.requestTimeout = optionalDuration(hcm.requestTimeout, present: hcm.hasRequestTimeout, default: nil)
        config.requestHeadersTimeout = optionalDuration(
            hcm.requestHeadersTimeout, present: hcm.hasRequestHeadersTimeout, default: nil)
        if hcm.hasCommonHTTPProtocolOptions {
            let common = hcm.commonHTTPProtocolOptions
            config.idleTimeout = optionalDuration(common.idleTimeout, present: common.hasIdleTimeout, default: .seconds(3600))
            config.maxConnectionDuration = optionalDuration(
                common.maxConnectionDuration, present: common.hasMaxConnectionDuration, default: nil)
            if common.hasMaxRequestsPerConnection, common.maxRequestsPerConnection.value > 0 {
                config.maxRequestsPerConnection = Int(common.maxRequestsPerConnection.value)
            }
            if common.hasMaxHeadersCount {
                if common.maxHeadersCount.value < 1 {
                    invalid(child(path, "common_http_protocol_options.max_headers_count"), "must be at least 1")
                }
                config.maxRequestHeadersCount = Int(common.maxHeadersCount.value)
            }
        }
        if hcm.hasMaxRequestHeadersKb {
            let kilobytes = hcm.maxRequestHeadersKb.value
            if kilobytes < 1 || kilobytes > 8192 {
                invalid(child(path, "max_request_headers_kb"), "\(kilobytes) is outside 1 to 8192")
            }
            config.maxRequestHeadersKB = Int(kilobytes)
        }
        if hcm.hasDrainTimeout { config.drainTimeout = hcm.drainTimeout.swiftDuration }
        if hcm.hasDelayedCloseTimeout { config.delayedCloseTimeout = hcm.delayedCloseTimeout.swiftDuration }
        for (index, upgrade) in hcm.upgradeConfigs.enumerated() {
            let upgradePath = child(path, "upgrade_configs[\(index)]")
            let type = upgrade.upgradeType.lowercased()
            if type.isEmpty {
                invalid(child(upgradePath, "upgrade_type"), "the upgrade type must not be empty")
            } else if config.upgradeTypes[type] != nil {
                invalid(upgradePath, "Error: multiple upgrade configs with the same name: '\(upgrade.upgradeType)'")
            } else {
                config.upgradeTypes[type] = upgrade.hasEnabled ? upgrade.enabled.value : true
            }
        }
        config.normalizePath = hcm.hasNormalizePath && hcm.normalizePath.value
        config.mergeSlashes = hcm.mergeSlashes
        switch hcm.pathWithEscapedSlashesAction {
        case .implementationSpecificDefault, .keepUnchanged: break
        default:
            unsupported(child(path, "path_with_escaped_slashes_action"), "only KEEP_UNCHANGED is supported",
                        feature: "HttpConnectionManager.path_with_escaped_slashes_action=\(hcm.pathWithEscapedSlashesAction)")
        }
        if hcm.hasHTTP2ProtocolOptions {
            config.http2 = http2Settings(hcm.http2ProtocolOptions, path: child(path, "http2_protocol_options"))
        }
        config.accessLogs = hcm.accessLog.enumerated().compactMap { accessLog($1, path: child(path, "access_log[\($0)]")) }
        if hcm.hasInternalAddressConfig {
            let internalConfig = hcm.internalAddressConfig
            config.internalAddresses = internalConfig.cidrRanges.enumerated().compactMap {
                cidrRange($1, path: child(path, "internal_address_config.cidr_ranges[\($0)]"))
            }
        }
        guard let routes, !hasErrors(since: before) else { return nil }
        config.routes = routes
        return config
    }

    /// `http2_protocol_options` within Envoy's bounds.
    private mutating func http2Settings(_ options: Envoy_Config_Core_V3_Http2ProtocolOptions, path: String) -> HTTP2ProtocolOptions {
        var settings = HTTP2ProtocolOptions()
        if options.hasMaxConcurrentStreams {
            let value = options.maxConcurrentStreams.value
            if value < 1 || value > 2_147_483_647 {
                invalid(child(path, "max_concurrent_streams"), "\(value) is outside 1 to 2147483647")
            } else {
                settings.maxConcurrentStreams = Int(value)
            }
        }
        for (field, present, value) in [
            ("initial_stream_window_size", options.hasInitialStreamWindowSize, options.initialStreamWindowSize.value),
            ("initial_connection_window_size", options.hasInitialConnectionWindowSize, options.initialConnectionWindowSize.value),
        ] where present {
            guard value >= 65535, value <= 2_147_483_647 else {
                invalid(child(path, field), "\(value) is outside 65535 to 2147483647")
                continue
            }
            if field == "initial_stream_window_size" {
                settings.initialStreamWindowSize = Int(value)
            } else {
                settings.initialConnectionWindowSize = Int(value)
            }
        }
        return settings
    }

    /// The HCM's filter chain. Envoy's rules: the router (a terminal filter) ends the chain and
    /// nothing follows it; an unknown filter type is skipped only when `is_optional`.
    private mutating func httpFilters(
        _ filters: [Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpFilter], path: String
    ) -> [HTTPFilter] {
        // Envoy adds the router when the list is empty.
        if filters.isEmpty { return [.router()] }
        var result: [HTTPFilter] = []
        var names: Set<String> = []
        for (index, filter) in filters.enumerated() {
            let filterPath = "\(path)[\(index)]"
            if filter.name.isEmpty { invalid(child(filterPath, "name"), "an HTTP filter needs a name") }
            if !names.insert(filter.name).inserted {
                // Envoy accepts this, but per-route overrides then address both filters.
                warning(child(filterPath, "name"), "another HTTP filter has the name \"\(filter.name)\"")
            }
            let isLast = index == filters.count - 1
            guard case .typedConfig(let any)? = filter.configType else {
                if filter.configType == nil {
                    invalid(filterPath, "HTTP filter \"\(filter.name)\" needs a typed_config")
                }
                continue  // config_discovery is reported by the support check
            }
            let typeName = Self.typeName(any.typeURL)
            if typeName == Self.routerType {
                if !isLast {
                    invalid(filterPath, "Error: terminal filter named \(filter.name) of type envoy.filters.http.router must be the last filter in a http filter chain.")
                }
            } else if isLast, Self.knownHTTPFilterTypes.contains(typeName) {
                invalid(filterPath, "Error: non-terminal filter named \(filter.name) of type \(typeName) is the last filter in a http filter chain.")
            }
            if filter.disabled, typeName == Self.routerType {
                invalid(child(filterPath, "disabled"), "the terminal filter cannot be disabled")
            }
            do {
                let kind: HTTPFilter.Kind?
                switch typeName {
                case Self.routerType:
                    let router = try Envoy_Extensions_Filters_Http_Router_V3_Router(unpackingAny: any)
                    kind = .router(RouterConfig(
                        suppressEnvoyHeaders: router.suppressEnvoyHeaders,
                        respectExpectedRequestTimeout: router.respectExpectedRqTimeout))
                case Self.faultType:
                    kind = fault(try Envoy_Extensions_Filters_Http_Fault_V3_HTTPFault(unpackingAny: any),
                                 path: child(filterPath, "typed_config")).map { .fault($0) }
                case Self.rbacType:
                    kind = rbacFilter(try Envoy_Extensions_Filters_Http_Rbac_V3_RBAC(unpackingAny: any),
                                      path: child(filterPath, "typed_config")).map { .rbac($0) }
                case Self.localRateLimitType:
                    kind = localRateLimit(try Envoy_Extensions_Filters_Http_LocalRatelimit_V3_LocalRateLimit(unpackingAny: any),
                                          path: child(filterPath, "typed_config")).map { .localRateLimit($0) }
                case Self.corsType:
                    kind = .cors
                default:
                    kind = nil  // optional ones are ignored, others unsupported: the support check says which
                }
                if let kind { result.append(HTTPFilter(name: filter.name, kind: kind, disabledByDefault: filter.disabled)) }
            } catch {
                invalid(child(filterPath, "typed_config"), "cannot decode \(typeName): \(error)")
            }
        }
        return result
    }

    static let knownHTTPFilterTypes: Set<String> = [faultType, rbacType, localRateLimitType, corsType]

    /// `access_log` entries of type `envoy.access_loggers.file`; filters and other loggers are
    /// left to the support check.
    private mutating func accessLog(_ log: Envoy_Config_Accesslog_V3_AccessLog, path: String) -> AccessLogConfig? {
        guard case .typedConfig(let any)? = log.configType else {
            invalid(path, "access log \"\(log.name)\" needs a typed_config")
            return nil
        }
        guard Self.typeName(any.typeURL) == Self.fileAccessLogType else { return nil }
        let configPath = child(path, "typed_config")
        let file: Envoy_Extensions_AccessLoggers_File_V3_FileAccessLog
        do {
            file = try Envoy_Extensions_AccessLoggers_File_V3_FileAccessLog(unpackingAny: any)
        } catch {
            invalid(configPath, "cannot decode FileAccessLog: \(error)")
            return nil
        }
        if file.path.isEmpty {
            invalid(child(configPath, "path"), "path is required")
            return nil
        }
        var format = AccessLogConfig.Format.defaultText
        switch file.accessLogFormat {
        case .format(let text)?:
            if !text.isEmpty { format = .text(text) }
        case .jsonFormat(let object)?:
            guard let fields = jsonFormat(object, path: child(configPath, "json_format")) else { return nil }
            format = .json(fields)
        case .logFormat(let substitution)?:
            let formatPath = child(configPath, "log_format")
            switch substitution.format {
            case .textFormat(let text)?:
                format = .text(text)
            case .textFormatSource(let source)?:
                switch source.specifier {
                case .inlineString(let text)?: format = .text(text)
                case .inlineBytes(let bytes)?: format = .text(String(decoding: bytes, as: UTF8.self))
                default:
                    return nil  // reported by the support check
                }
            case .jsonFormat(let object)?:
                guard let fields = jsonFormat(object, path: child(formatPath, "json_format")) else { return nil }
                format = .json(fields)
            case nil:
                invalid(formatPath, "log_format needs text_format, text_format_source or json_format")
                return nil
            }
        case .typedJsonFormat?, nil:
            break  // typed_json_format is reported by the support check
        }
        return AccessLogConfig(path: file.path, format: format)
    }

    /// A flat `json_format` whose values are format strings.
    private mutating func jsonFormat(_ object: Google_Protobuf_Struct, path: String) -> [String: String]? {
        var fields: [String: String] = [:]
        for (key, value) in object.fields {
            guard case .stringValue(let text)? = value.kind else {
                unsupported(child(path, key), "only string values are supported in json_format",
                            feature: "json_format with nested or non-string values")
                return nil
            }
            fields[key] = text
        }
        return fields
    }
}
