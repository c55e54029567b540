#if canImport(Glibc)
import Glibc
#endif
import NIOHTTP1
import SluiceModel

/// A wall-clock instant (`%START_TIME%`), nanoseconds since the Unix epoch.
public struct WallClockTime: Hashable, Sendable, Comparable {
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) { self.nanosecondsSinceEpoch = nanosecondsSinceEpoch }

    public init(secondsSinceEpoch: Int64, nanoseconds: Int64 = 0) {
        nanosecondsSinceEpoch = secondsSinceEpoch * 1_000_000_000 + nanoseconds
    }

    /// The current time (CLOCK_REALTIME).
    public static func now() -> WallClockTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallClockTime(secondsSinceEpoch: Int64(spec.tv_sec), nanoseconds: Int64(spec.tv_nsec))
    }

    public static func < (lhs: WallClockTime, rhs: WallClockTime) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }
}

/// Everything Envoy's command operators read of one finished (or, for header substitution, starting)
/// request: what `StreamInfo` and the header maps give Envoy's access loggers.
public struct AccessLogEntry: Sendable {
    /// The downstream request head (nil when the stream failed before one was parsed).
    public var request: HTTPRequestContext?
    public var startTime: WallClockTime
    /// Start to the last request byte received (`%REQUEST_DURATION%`).
    public var requestDuration: Duration?
    /// Start to the first upstream response byte (`%RESPONSE_DURATION%`).
    public var responseDuration: Duration?
    /// Start to the last response byte sent downstream (`%DURATION%`).
    public var duration: Duration?
    /// First to last response byte sent downstream (`%RESPONSE_TX_DURATION%`).
    public var responseTxDuration: Duration?
    /// nil: no response was sent (`%RESPONSE_CODE%` prints 0).
    public var responseCode: Int?
    public var responseCodeDetails: String?
    public var connectionTerminationDetails: String?
    public var responseFlags: ResponseFlags
    /// Request body bytes received from downstream.
    public var bytesReceived: UInt64
    /// Response body bytes sent downstream.
    public var bytesSent: UInt64
    public var responseHeaders: HTTPHeaders?
    public var responseTrailers: HTTPHeaders?
    public var upstreamHost: SocketEndpoint?
    public var upstreamCluster: String?
    public var upstreamLocalAddress: SocketEndpoint?
    public var upstreamTransportFailureReason: String?
    public var upstreamRequestAttemptCount: Int?
    public var routeName: String?
    /// SNI; empty or nil on plain text (prints `-`).
    public var requestedServerName: String?
    public var connectionID: UInt64?
    /// Downstream addresses; default to the request's.
    public var downstreamRemote: SocketEndpoint?
    public var downstreamDirectRemote: SocketEndpoint?
    public var downstreamLocal: SocketEndpoint?

    public init(
        request: HTTPRequestContext?, startTime: WallClockTime, requestDuration: Duration? = nil,
        responseDuration: Duration? = nil, duration: Duration? = nil, responseTxDuration: Duration? = nil,
        responseCode: Int? = nil, responseCodeDetails: String? = nil, connectionTerminationDetails: String? = nil,
        responseFlags: ResponseFlags = [], bytesReceived: UInt64 = 0, bytesSent: UInt64 = 0,
        responseHeaders: HTTPHeaders? = nil, responseTrailers: HTTPHeaders? = nil, upstreamHost: SocketEndpoint? = nil,
        upstreamCluster: String? = nil, upstreamLocalAddress: SocketEndpoint? = nil,
        upstreamTransportFailureReason: String? = nil, upstreamRequestAttemptCount: Int? = nil, routeName: String? = nil,
        requestedServerName: String? = nil, connectionID: UInt64? = nil, downstreamRemote: SocketEndpoint? = nil,
        downstreamDirectRemote: SocketEndpoint? = nil, downstreamLocal: SocketEndpoint? = nil
    ) {
        self.request = request
        self.startTime = startTime
        self.requestDuration = requestDuration
        self.responseDuration = responseDuration
        self.duration = duration
        self.responseTxDuration = responseTxDuration
        self.responseCode = responseCode
        self.responseCodeDetails = responseCodeDetails
        self.connectionTerminationDetails = connectionTerminationDetails
        self.responseFlags = responseFlags
        self.bytesReceived = bytesReceived
        self.bytesSent = bytesSent
        self.responseHeaders = responseHeaders
        self.responseTrailers = responseTrailers
        self.upstreamHost = upstreamHost
        self.upstreamCluster = upstreamCluster
        self.upstreamLocalAddress = upstreamLocalAddress
        self.upstreamTransportFailureReason = upstreamTransportFailureReason
        self.upstreamRequestAttemptCount = upstreamRequestAttemptCount
        self.routeName = routeName
        self.requestedServerName = requestedServerName
        self.connectionID = connectionID
        self.downstreamRemote = downstreamRemote ?? request?.remote
        self.downstreamDirectRemote = downstreamDirectRemote ?? request?.directRemote
        self.downstreamLocal = downstreamLocal ?? request?.local
    }

    /// The context `request_headers_to_add` values are substituted in: the request as it arrives, no
    /// response yet (response operators give nothing).
    public static func requestOnly(_ request: HTTPRequestContext, startTime: WallClockTime = .now(),
                                   routeName: String? = nil, upstreamCluster: String? = nil,
                                   requestedServerName: String? = nil) -> AccessLogEntry {
        AccessLogEntry(request: request, startTime: startTime, upstreamCluster: upstreamCluster, routeName: routeName,
                       requestedServerName: requestedServerName)
    }
}
