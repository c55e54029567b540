/// `envoy.filters.network.http_connection_manager`.
public struct HTTPConnectionManagerConfig: Hashable, Sendable {
    /// Envoy's `CodecType`; AUTO tells HTTP/2 by its connection preface.
    public enum CodecType: Hashable, Sendable {
        case auto, http1, http2
    }

    /// Where the route table comes from.
    public enum RouteSource: Hashable, Sendable {
        case inline(RouteConfiguration)
        /// Over RDS, by name; requests get 404 (Envoy: no route) until it arrives.
        case rds(name: String)
    }

    public var statPrefix: String
    public var codecType: CodecType
    public var routes: RouteSource
    /// The HTTP filters in order; the last is the router.
    public var httpFilters: [HTTPFilter]
    public var useRemoteAddress: Bool
    public var xffNumTrustedHops: Int
    public var skipXFFAppend: Bool
    /// `via` header value added to requests and responses; nil adds none.
    public var via: String?
    public var generateRequestID: Bool
    public var preserveExternalRequestID: Bool
    /// `server_name`, sent as `server` in responses (Envoy default `envoy`).
    public var serverName: String
    public var serverHeaderTransformation: ServerHeaderTransformation
    /// Idle time of a stream with no activity (Envoy default 5 minutes); nil disables it.
    public var streamIdleTimeout: Duration?
    /// Time to receive the whole request; nil (Envoy default) disables it.
    public var requestTimeout: Duration?
    public var requestHeadersTimeout: Duration?
    /// Downstream connection idle timeout (`common_http_protocol_options.idle_timeout`, default 1 h).
    public var idleTimeout: Duration?
    public var maxConnectionDuration: Duration?
    public var maxRequestsPerConnection: Int?
    /// Bound on the request headers' total size (Envoy default 60 KiB).
    public var maxRequestHeadersKB: Int
    public var maxRequestHeadersCount: Int
    /// Time between `Connection: close`/GOAWAY and closing while draining (Envoy default 5 s).
    public var drainTimeout: Duration
    public var delayedCloseTimeout: Duration
    /// Upgrade types (e.g. `websocket`) allowed through, with their enabled flag.
    public var upgradeTypes: [String: Bool]
    public var normalizePath: Bool
    public var mergeSlashes: Bool
    public var http2: HTTP2ProtocolOptions
    public var accessLogs: [AccessLogConfig]
    /// Requests from addresses this CIDR list names count as internal (`x-envoy-internal`).
    public var internalAddresses: [CIDRRange]?
    public var forwardClientCertDetails: Bool

    /// How the `server` response header is set.
    public enum ServerHeaderTransformation: Hashable, Sendable {
        case overwrite, appendIfAbsent, passThrough
    }

    public init(
        statPrefix: String, codecType: CodecType = .auto, routes: RouteSource, httpFilters: [HTTPFilter] = [.router()],
        useRemoteAddress: Bool = false, xffNumTrustedHops: Int = 0, skipXFFAppend: Bool = false, via: String? = nil,
        generateRequestID: Bool = true, preserveExternalRequestID: Bool = false, serverName: String = "envoy",
        serverHeaderTransformation: ServerHeaderTransformation = .overwrite, streamIdleTimeout: Duration? = .seconds(300),
        requestTimeout: Duration? = nil, requestHeadersTimeout: Duration? = nil, idleTimeout: Duration? = .seconds(3600),
        maxConnectionDuration: Duration? = nil, maxRequestsPerConnection: Int? = nil, maxRequestHeadersKB: Int = 60,
        maxRequestHeadersCount: Int = 100, drainTimeout: Duration = .seconds(5), delayedCloseTimeout: Duration = .seconds(1),
        upgradeTypes: [String: Bool] = [:], normalizePath: Bool = false, mergeSlashes: Bool = false,
        http2: HTTP2ProtocolOptions = HTTP2ProtocolOptions(), accessLogs: [AccessLogConfig] = [], internalAddresses: [CIDRRange]? = nil,
        forwardClientCertDetails: Bool = false
    ) {
        self.statPrefix = statPrefix
        self.codecType = codecType
        self.routes = routes
        self.httpFilters = httpFilters
        self.useRemoteAddress = useRemoteAddress
        self.xffNumTrustedHops = xffNumTrustedHops
        self.skipXFFAppend = skipXFFAppend
        self.via = via
        self.generateRequestID = generateRequestID
        self.preserveExternalRequestID = preserveExternalRequestID
        self.serverName = serverName
        self.serverHeaderTransformation = serverHeaderTransformation
        self.streamIdleTimeout = streamIdleTimeout
        self.requestTimeout = requestTimeout
        self.requestHeadersTimeout = requestHeadersTimeout
        self.idleTimeout = idleTimeout
        self.maxConnectionDuration = maxConnectionDuration
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.maxRequestHeadersKB = maxRequestHeadersKB
        self.maxRequestHeadersCount = maxRequestHeadersCount
        self.drainTimeout = drainTimeout
        self.delayedCloseTimeout = delayedCloseTimeout
        self.upgradeTypes = upgradeTypes
        self.normalizePath = normalizePath
        self.mergeSlashes = mergeSlashes
        self.http2 = http2
        self.accessLogs = accessLogs
        self.internalAddresses = internalAddresses
        self.forwardClientCertDetails = forwardClientCertDetails
    }

    /// The RDS route configuration this manager waits for, if any.
    public var rdsName: String? {
        if case .rds(let name) = routes { return name }
        return nil
    }
}

/// `http2_protocol_options` (downstream or upstream).
public struct HTTP2ProtocolOptions: Hashable, Sendable {
    public var maxConcurrentStreams: Int
    public var initialStreamWindowSize: Int
    public var initialConnectionWindowSize: Int

    /// Envoy's defaults: 2^31-1 streams, 256 MiB stream window, 256 MiB connection window.
    public init(maxConcurrentStreams: Int = 2_147_483_647, initialStreamWindowSize: Int = 268_435_456,
                initialConnectionWindowSize: Int = 268_435_456) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialStreamWindowSize = initialStreamWindowSize
        self.initialConnectionWindowSize = initialConnectionWindowSize
    }
}

/// `envoy.access_loggers.file`.
public struct AccessLogConfig: Hashable, Sendable {
    public enum Format: Hashable, Sendable {
        /// Envoy's default text format.
        case defaultText
        /// A format string with command operators (`%START_TIME% %REQ(:PATH)%`…).
        case text(String)
        /// `log_format.json_format` (and `typed_json_format`): keys and their format strings, one JSON object
        /// per line; a value that is one numeric operator prints as a number, a missing one as null.
        case json([String: String])
        /// The deprecated `FileAccessLog.json_format`: every value a string, missing values `"-"`.
        case untypedJSON([String: String])
    }

    /// `/dev/stdout`, `/dev/stderr` or a file path.
    public var path: String
    public var format: Format

    public init(path: String, format: Format = .defaultText) {
        self.path = path
        self.format = format
    }

    /// Envoy's default access log format.
    public static let defaultFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
        + "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
        + "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
        + "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"
}
