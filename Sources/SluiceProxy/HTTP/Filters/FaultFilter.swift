import SluiceModel

/// `envoy.filters.http.fault` for one HTTP connection manager: its configuration, its stats and the
/// active-fault count shared by every stream on every event loop.
///
/// Per stream the connection manager makes a `FaultFilter.Stream`, calls `decodeHeaders` once the
/// route is known, `delayElapsed` when a delay it was told to wait has passed, and `streamEnded`
/// when the stream is destroyed (whatever happened), so `active_faults` goes back down.
public final class FaultFilter: Sendable {
    /// Header names Envoy reads (implicitly untrusted; only the first value is used).
    public enum HeaderName {
        public static let delayRequest = "x-envoy-fault-delay-request"
        public static let delayRequestPercentage = "x-envoy-fault-delay-request-percentage"
        public static let abortRequest = "x-envoy-fault-abort-request"
        public static let abortGRPCRequest = "x-envoy-fault-abort-grpc-request"
        public static let abortRequestPercentage = "x-envoy-fault-abort-request-percentage"
        public static let downstreamServiceNode = "x-envoy-downstream-service-node"
        public static let downstreamServiceCluster = "x-envoy-downstream-service-cluster"
    }

    public let config: FaultConfig
    private let hcmStatPrefix: String
    private let stats: StatsStore
    let delaysInjected: Counter
    let abortsInjected: Counter
    let faultsOverflow: Counter
    let activeFaults: Gauge

    /// Stats go to `http.<hcmStatPrefix>.fault.*` as Envoy names them.
    public init(config: FaultConfig, hcmStatPrefix: String, stats: StatsStore) throws(FilterConfigError) {
        try Self.validate(config, at: "envoy.filters.http.fault")
        self.config = config
        self.hcmStatPrefix = hcmStatPrefix
        self.stats = stats
        delaysInjected = stats.counter(.http(hcmStatPrefix, "fault.delays_injected"))
        abortsInjected = stats.counter(.http(hcmStatPrefix, "fault.aborts_injected"))
        faultsOverflow = stats.counter(.http(hcmStatPrefix, "fault.faults_overflow"))
        activeFaults = stats.gauge(.http(hcmStatPrefix, "fault.active_faults"))
        _ = stats.counter(.http(hcmStatPrefix, "fault.response_rl_injected"))
    }

    /// Rejects what Envoy rejects: an abort HTTP status outside [200, 600), a negative gRPC status,
    /// an unknown percentage denominator, a header matcher regex that does not compile.
    public static func validate(_ config: FaultConfig, at field: String) throws(FilterConfigError) {
        if case .httpStatus(let status)? = config.abort?.kind, !(200..<600).contains(status) {
            throw FilterConfigError(field: "\(field).abort.http_status", problem: "\(status) is not in [200, 600)")
        }
        if case .grpcStatus(let status)? = config.abort?.kind, status < 0 {
            throw FilterConfigError(field: "\(field).abort.grpc_status", problem: "\(status) is negative")
        }
        for (index, matcher) in config.headers.enumerated() {
            if case .string(let stringMatcher) = matcher.rule {
                try FilterMatching.validate(stringMatcher, at: "\(field).headers[\(index)]")
            }
        }
        for percentage in [config.delay?.percentage, config.abort?.percentage].compactMap({ $0 })
        where ![100, 10_000, 1_000_000].contains(percentage.denominator) {
            throw FilterConfigError(field: "\(field).percentage", problem: "denominator \(percentage.denominator)")
        }
    }

    /// What the connection manager does next with a stream.
    public enum Action: Hashable, Sendable {
        /// Pass the request on.
        case proceed
        /// Hold the request (body and trailers too) for this long, then call `delayElapsed`.
        case delay(Duration)
        /// Answer with this local reply and stop (the stream's flags already include it).
        case abort(FilterLocalReply)
    }

    /// One request's passage through the filter.
    public struct Stream: Sendable {
        let filter: FaultFilter
        var settings: FaultConfig?
        var downstreamCluster: String?
        /// This stream counts in `active_faults` (Envoy charges one per stream at most).
        public private(set) var holdsActiveFault = false
        /// `DI` and/or `FI` as set so far.
        public private(set) var responseFlags: ResponseFlags = []

        init(filter: FaultFilter) { self.filter = filter }

        /// Decides on the request head. `routeOverride` is the route's (or virtual host's) most specific
        /// `typed_per_filter_config` for this filter: `.fault` replaces the filter's settings,
        /// `.disabled` turns the filter off. `upstreamCluster` is the route's cluster (nil: no route).
        /// `random` supplies the uniformly random values the percentages draw (one per percentage).
        public mutating func decodeHeaders(
            _ request: HTTPRequestContext, routeOverride: PerRouteFilterConfig? = nil, upstreamCluster: String?,
            random: inout some RandomNumberGenerator
        ) -> Action {
            switch routeOverride {
            case .disabled?: return .proceed
            case .fault(let perRoute)?: settings = perRoute
            default: settings = filter.config
            }
            guard let settings else { return .proceed }
            if let target = settings.upstreamCluster, !target.isEmpty, upstreamCluster != target { return .proceed }
            if !settings.downstreamNodes.isEmpty {
                guard let node = request.headers.first(name: HeaderName.downstreamServiceNode),
                      settings.downstreamNodes.contains(node) else { return .proceed }
            }
            guard FilterMatching.matchesAll(settings.headers, request) else { return .proceed }
            if let cluster = request.headers.first(name: HeaderName.downstreamServiceCluster), !cluster.isEmpty {
                downstreamCluster = cluster
            }

            if let delay = delayDuration(settings, request, &random), tryActivateFault() {
                count("delays_injected", filter.delaysInjected)
                responseFlags.insert(.delayInjected)
                return .delay(delay)
            }
            if let reply = abortReply(settings, request, &random), tryActivateFault() {
                return .abort(abort(reply))
            }
            return .proceed
        }

        /// After the delay: abort if the abort fault fires now (a fresh draw, as Envoy does), else continue.
        public mutating func delayElapsed(_ request: HTTPRequestContext, random: inout some RandomNumberGenerator) -> Action {
            guard let settings else { return .proceed }
            if let reply = abortReply(settings, request, &random) { return .abort(abort(reply)) }
            releaseActiveFault()
            return .proceed
        }

        /// The stream is gone: gives back its `active_faults` share.
        public mutating func streamEnded() { releaseActiveFault() }

        private mutating func releaseActiveFault() {
            if holdsActiveFault {
                filter.activeFaults.decrement()
                holdsActiveFault = false
            }
        }

        private mutating func tryActivateFault() -> Bool {
            if holdsActiveFault { return true }
            let limit = settings?.maxActiveFaults.map(Int64.init) ?? Int64.max
            if filter.activeFaults.value >= limit {
                filter.faultsOverflow.increment()
                return false
            }
            filter.activeFaults.increment()
            holdsActiveFault = true
            return true
        }

        private mutating func abort(_ reply: FilterLocalReply) -> FilterLocalReply {
            count("aborts_injected", filter.abortsInjected)
            responseFlags.insert(.faultInjected)
            return reply
        }

        private func count(_ leaf: String, _ counter: Counter) {
            if let downstreamCluster {
                filter.stats.counter(.http(filter.hcmStatPrefix, "fault.\(downstreamCluster).\(leaf)")).increment()
            }
            counter.increment()
        }

        private func delayDuration(_ settings: FaultConfig, _ request: HTTPRequestContext,
                                   _ random: inout some RandomNumberGenerator) -> Duration? {
            guard let delay = settings.delay else { return nil }
            let headerControlled = delay.fixed == nil
            let percentage = headerControlled
                ? Self.headerPercentage(request, HeaderName.delayRequestPercentage, delay.percentage) : delay.percentage
            guard percentage.sample(&random) else { return nil }
            let duration: Duration
            if let fixed = delay.fixed {
                duration = fixed
            } else {
                guard let text = request.headers.first(name: HeaderName.delayRequest), let ms = UInt64(text) else { return nil }
                duration = .milliseconds(Int64(clamping: ms))
            }
            // Envoy works in whole milliseconds and delays only when that is > 0.
            let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
            return ms > 0 ? .milliseconds(ms) : nil
        }

        private func abortReply(_ settings: FaultConfig, _ request: HTTPRequestContext,
                                _ random: inout some RandomNumberGenerator) -> FilterLocalReply? {
            guard let abort = settings.abort else { return nil }
            let percentage: FractionalPercent
            if case .fromHeader = abort.kind {
                percentage = Self.headerPercentage(request, HeaderName.abortRequestPercentage, abort.percentage)
            } else {
                percentage = abort.percentage
            }
            guard percentage.sample(&random) else { return nil }
            let details = "fault_filter_abort"
            switch abort.kind {
            case .httpStatus(let status):
                return FilterLocalReply(status: status, body: "fault filter abort", details: details, flags: .faultInjected)
            case .grpcStatus(let status):
                return FilterLocalReply(status: 200, body: "fault filter abort", grpcStatus: status, details: details,
                                        flags: .faultInjected)
            case .fromHeader:
                // An HTTP status outside [200, 600) is ignored; the gRPC header is tried next, as in Envoy.
                if let text = request.headers.first(name: HeaderName.abortRequest), let status = UInt64(text),
                   (200..<600).contains(status) {
                    return FilterLocalReply(status: Int(status), body: "fault filter abort", details: details,
                                            flags: .faultInjected)
                }
                if let text = request.headers.first(name: HeaderName.abortGRPCRequest), let status = UInt32(text) {
                    return FilterLocalReply(status: 200, body: "fault filter abort", grpcStatus: Int(status),
                                            details: details, flags: .faultInjected)
                }
                return nil
            }
        }

        /// A header-controlled fault's percentage: the header's numerator, capped at the configured one,
        /// over the configured denominator; a missing or non-numeric header keeps the configured value.
        static func headerPercentage(_ request: HTTPRequestContext, _ header: String,
                                     _ configured: FractionalPercent) -> FractionalPercent {
            guard let text = request.headers.first(name: header), let numerator = UInt32(text) else { return configured }
            return FractionalPercent(numerator: min(numerator, configured.numerator), denominator: configured.denominator)
        }
    }

    /// A new stream's state.
    public func makeStream() -> Stream { Stream(filter: self) }
}
