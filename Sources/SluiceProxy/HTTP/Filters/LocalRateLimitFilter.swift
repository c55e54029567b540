import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// `envoy.filters.http.local_ratelimit`: the in-proxy quota, one token bucket per configuration
/// (the filter's, and one per route override), shared by all event loops.
///
/// Stats are Envoy's `<stat_prefix>.http_local_rate_limit.enabled|enforced|rate_limited|ok`, at the
/// root (not under `http.<hcm>.`), with the filter's own `stat_prefix`.
public final class LocalRateLimitFilter: Sendable {
    public let config: LocalRateLimitConfig
    /// nil: no token bucket, so every request is allowed (a filter-level config may leave it out and let
    /// routes set limits).
    let limiter: TokenBucketLimiter?
    let enabled: Counter
    let enforced: Counter
    let rateLimited: Counter
    let ok: Counter

    /// `perRoute`: a route or virtual host override, which Envoy requires to have a token bucket.
    public init(config: LocalRateLimitConfig, stats: StatsStore, now: NIODeadline, perRoute: Bool = false)
        throws(FilterConfigError)
    {
        let field = "envoy.filters.http.local_ratelimit"
        if config.statPrefix.isEmpty { throw FilterConfigError(field: "\(field).stat_prefix", problem: "must not be empty") }
        if perRoute, config.tokenBucket == nil {
            throw FilterConfigError(field: "\(field).token_bucket", problem: "must be set for per filter configs")
        }
        if let bucket = config.tokenBucket {
            if bucket.maxTokens <= 0 {
                throw FilterConfigError(field: "\(field).token_bucket.max_tokens", problem: "must be greater than 0")
            }
            if bucket.tokensPerFill <= 0 {
                throw FilterConfigError(field: "\(field).token_bucket.tokens_per_fill", problem: "must be greater than 0")
            }
            if bucket.fillInterval <= .zero {
                throw FilterConfigError(field: "\(field).token_bucket.fill_interval", problem: "must be greater than 0")
            }
        }
        if !(100..<600).contains(config.status) {
            throw FilterConfigError(field: "\(field).status", problem: "\(config.status) is not an HTTP status")
        }
        self.config = config
        limiter = config.tokenBucket.map { TokenBucketLimiter($0, now: now) }
        enabled = stats.counter(Self.statName(config.statPrefix, "enabled"))
        enforced = stats.counter(Self.statName(config.statPrefix, "enforced"))
        rateLimited = stats.counter(Self.statName(config.statPrefix, "rate_limited"))
        ok = stats.counter(Self.statName(config.statPrefix, "ok"))
    }

    /// `<stat_prefix>.http_local_rate_limit.<leaf>`.
    public static func statName(_ statPrefix: String, _ leaf: String) -> StatName {
        StatName(scope: statPrefix, leaf: "http_local_rate_limit.\(leaf)")
    }

    /// The verdict on one request.
    public struct Decision: Sendable {
        /// Non-nil: answer with this (status, `local_rate_limited`, flag RL) and stop. Envoy adds no
        /// `x-envoy-ratelimited` for the local limit.
        public var localReply: FilterLocalReply?
        /// `response_headers_to_add`, for the local reply (values may hold command operators).
        public var replyHeadersToAdd: [HeaderValueOption] = []
        /// `request_headers_to_add_when_not_enforced`: limited but not enforced, add these to the request.
        public var requestHeadersToAdd: [HeaderValueOption] = []
        /// The bucket that decided, for `x-ratelimit-*` on the response.
        let limiter: TokenBucketLimiter?
        let addXRateLimitHeaders: Bool

        /// `x-ratelimit-limit` and `x-ratelimit-remaining` (draft 03) for the response headers (also of a local
        /// reply), when enabled; call when the response head is encoded. Envoy's continuously refilled bucket
        /// has no fill instant, so since 1.31 it sends no `x-ratelimit-reset`.
        public func responseHeaders(now: NIODeadline) -> [(name: String, value: String)] {
            guard addXRateLimitHeaders, let limiter else { return [] }
            return [
                ("x-ratelimit-limit", String(limiter.bucket.maxTokens)),
                ("x-ratelimit-remaining", String(limiter.remainingTokens(now: now))),
            ]
        }
    }

    /// Decides on a request head. `routeOverride` is the filter built for the route's (or virtual host's)
    /// most specific `typed_per_filter_config`; it replaces this one, bucket and stats. `connection` holds the
    /// connection's own buckets when `local_rate_limit_per_downstream_connection` is set. `random` draws the
    /// `filter_enabled` and `filter_enforced` fractions (Envoy: unset means 0%, so the filter does nothing).
    public func decodeHeaders(routeOverride: LocalRateLimitFilter? = nil, connection: LocalRateLimitConnectionBuckets? = nil,
                              now: NIODeadline, random: inout some RandomNumberGenerator) -> Decision {
        let used = routeOverride ?? self
        return used.decide(connection: connection, now: now, random: &random)
    }

    private func decide(connection: LocalRateLimitConnectionBuckets?, now: NIODeadline,
                        random: inout some RandomNumberGenerator) -> Decision {
        guard config.filterEnabled.sample(&random) else {
            return Decision(limiter: nil, addXRateLimitHeaders: false)
        }
        enabled.increment()
        var bucket = limiter
        if config.perDownstreamConnection, let connection, let own = config.tokenBucket {
            bucket = connection.limiter(for: self, bucket: own, now: now)
        }
        var decision = Decision(limiter: bucket, addXRateLimitHeaders: config.enableXRateLimitHeaders)
        if bucket?.tryConsume(now: now) ?? true {
            ok.increment()
            return decision
        }
        rateLimited.increment()
        guard config.filterEnforced.sample(&random) else {
            decision.requestHeadersToAdd = config.requestHeadersToAddWhenNotEnforced
            return decision
        }
        enforced.increment()
        decision.localReply = FilterLocalReply(status: config.status, body: "local_rate_limited",
                                               details: "local_rate_limited", flags: .rateLimited)
        decision.replyHeadersToAdd = config.responseHeadersToAdd
        return decision
    }
}

/// One downstream connection's buckets (`local_rate_limit_per_downstream_connection`), one per filter
/// configuration, made full on first use. The connection manager makes one per connection.
public final class LocalRateLimitConnectionBuckets: Sendable {
    /// Keyed by the filter's identity; the filter is kept too, so its address cannot be reused meanwhile.
    private let limiters = NIOLockedValueBox<[ObjectIdentifier: (filter: LocalRateLimitFilter, limiter: TokenBucketLimiter)]>([:])

    public init() {}

    func limiter(for filter: LocalRateLimitFilter, bucket: TokenBucket, now: NIODeadline) -> TokenBucketLimiter {
        limiters.withLockedValue { limiters in
            if let existing = limiters[ObjectIdentifier(filter)] { return existing.limiter }
            let made = TokenBucketLimiter(bucket, now: now)
            limiters[ObjectIdentifier(filter)] = (filter, made)
            return made
        }
    }
}
