/// Envoy's response flags (`%RESPONSE_FLAGS%`): why a response is not simply the upstream's.
///
/// Bit order is Envoy's flag order, which is also the order `%RESPONSE_FLAGS%` prints them in,
/// joined by `,`; no flag prints `-`.
public struct ResponseFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let failedLocalHealthCheck = ResponseFlags(rawValue: 1 << 0)
    public static let noHealthyUpstream = ResponseFlags(rawValue: 1 << 1)
    public static let upstreamRequestTimeout = ResponseFlags(rawValue: 1 << 2)
    public static let localReset = ResponseFlags(rawValue: 1 << 3)
    public static let upstreamRemoteReset = ResponseFlags(rawValue: 1 << 4)
    public static let upstreamConnectionFailure = ResponseFlags(rawValue: 1 << 5)
    public static let upstreamConnectionTermination = ResponseFlags(rawValue: 1 << 6)
    public static let upstreamOverflow = ResponseFlags(rawValue: 1 << 7)
    public static let noRouteFound = ResponseFlags(rawValue: 1 << 8)
    public static let delayInjected = ResponseFlags(rawValue: 1 << 9)
    public static let faultInjected = ResponseFlags(rawValue: 1 << 10)
    public static let rateLimited = ResponseFlags(rawValue: 1 << 11)
    public static let unauthorizedExternalService = ResponseFlags(rawValue: 1 << 12)
    public static let rateLimitServiceError = ResponseFlags(rawValue: 1 << 13)
    public static let downstreamConnectionTermination = ResponseFlags(rawValue: 1 << 14)
    public static let upstreamRetryLimitExceeded = ResponseFlags(rawValue: 1 << 15)
    public static let streamIdleTimeout = ResponseFlags(rawValue: 1 << 16)
    public static let invalidEnvoyRequestHeaders = ResponseFlags(rawValue: 1 << 17)
    public static let downstreamProtocolError = ResponseFlags(rawValue: 1 << 18)
    public static let upstreamMaxStreamDurationReached = ResponseFlags(rawValue: 1 << 19)
    public static let responseFromCacheFilter = ResponseFlags(rawValue: 1 << 20)
    public static let noFilterConfigFound = ResponseFlags(rawValue: 1 << 21)
    public static let durationTimeout = ResponseFlags(rawValue: 1 << 22)
    public static let upstreamProtocolError = ResponseFlags(rawValue: 1 << 23)
    public static let noClusterFound = ResponseFlags(rawValue: 1 << 24)
    public static let overloadManager = ResponseFlags(rawValue: 1 << 25)
    public static let dnsResolutionFailed = ResponseFlags(rawValue: 1 << 26)
    public static let dropOverload = ResponseFlags(rawValue: 1 << 27)

    /// Short and long names in Envoy's order (bit i is entry i).
    public static let names: [(short: String, long: String)] = [
        ("LH", "FailedLocalHealthCheck"), ("UH", "NoHealthyUpstream"), ("UT", "UpstreamRequestTimeout"),
        ("LR", "LocalReset"), ("UR", "UpstreamRemoteReset"), ("UF", "UpstreamConnectionFailure"),
        ("UC", "UpstreamConnectionTermination"), ("UO", "UpstreamOverflow"), ("NR", "NoRouteFound"),
        ("DI", "DelayInjected"), ("FI", "FaultInjected"), ("RL", "RateLimited"),
        ("UAEX", "UnauthorizedExternalService"), ("RLSE", "RateLimitServiceError"),
        ("DC", "DownstreamConnectionTermination"), ("URX", "UpstreamRetryLimitExceeded"),
        ("SI", "StreamIdleTimeout"), ("IH", "InvalidEnvoyRequestHeaders"), ("DPE", "DownstreamProtocolError"),
        ("UMSDR", "UpstreamMaxStreamDurationReached"), ("RFCF", "ResponseFromCacheFilter"),
        ("NFCF", "NoFilterConfigFound"), ("DT", "DurationTimeout"), ("UPE", "UpstreamProtocolError"),
        ("NC", "NoClusterFound"), ("OM", "OverloadManagerTerminated"), ("DF", "DnsResolutionFailed"),
        ("DO", "DropOverload"),
    ]

    /// `%RESPONSE_FLAGS%`: `UH,UF` or `-`.
    public var shortString: String { joined(\.short) }
    /// `%RESPONSE_FLAGS_LONG%`: `NoHealthyUpstream,UpstreamConnectionFailure` or `-`.
    public var longString: String { joined(\.long) }

    /// The flag with this short name (`UH`), as `access_log` filters name them.
    public init?(shortName: String) {
        guard let index = Self.names.firstIndex(where: { $0.short == shortName }) else { return nil }
        self.init(rawValue: 1 << UInt32(index))
    }

    private func joined(_ name: KeyPath<(short: String, long: String), String>) -> String {
        var parts: [String] = []
        for (index, names) in Self.names.enumerated() where rawValue & (1 << UInt32(index)) != 0 {
            parts.append(names[keyPath: name])
        }
        return parts.isEmpty ? "-" : parts.joined(separator: ",")
    }
}
