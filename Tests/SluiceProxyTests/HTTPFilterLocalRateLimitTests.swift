import NIOCore
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct HTTPFilterLocalRateLimitTests {
    private let stats = StatsStore()
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    private func at(_ milliseconds: Int64) -> NIODeadline { start + .milliseconds(milliseconds) }
    private func count(_ leaf: String) -> UInt64 {
        stats.counter(LocalRateLimitFilter.statName("http_local_rate_limiter", leaf)).value
    }

    private func config(maxTokens: Int = 2, perFill: Int = 1, interval: Duration = .seconds(1),
                        enabled: FractionalPercent = .all, enforced: FractionalPercent = .all) -> LocalRateLimitConfig {
        LocalRateLimitConfig(
            statPrefix: "http_local_rate_limiter",
            tokenBucket: TokenBucket(maxTokens: maxTokens, tokensPerFill: perFill, fillInterval: interval),
            filterEnabled: enabled, filterEnforced: enforced,
            responseHeadersToAdd: [HeaderValueOption(name: "x-local-rate-limit", value: "true")],
            requestHeadersToAddWhenNotEnforced: [HeaderValueOption(name: "x-would-limit", value: "1")])
    }

    @Test func bucketStartsFullAndRefillsContinuously() {
        // 2 tokens per second, at most 3.
        let bucket = TokenBucketLimiter(TokenBucket(maxTokens: 3, tokensPerFill: 2, fillInterval: .seconds(1)), now: at(0))
        #expect(bucket.tryConsume(now: at(0)))
        #expect(bucket.tryConsume(now: at(0)))
        #expect(bucket.tryConsume(now: at(0)))
        #expect(!bucket.tryConsume(now: at(0)))
        // 0.4 s later: 0.8 tokens, not a whole one.
        #expect(!bucket.tryConsume(now: at(400)))
        // 0.5 s: one token.
        #expect(bucket.tryConsume(now: at(500)))
        #expect(bucket.remainingTokens(now: at(500)) == 0)
        // 1.5 s on: two tokens; 10 s on: capped at 3.
        #expect(bucket.remainingTokens(now: at(1500)) == 2)
        #expect(bucket.remainingTokens(now: at(10_500)) == 3)
    }

    @Test func failedAttemptsDoNotDrainTheRefill() {
        let bucket = TokenBucketLimiter(TokenBucket(maxTokens: 1, tokensPerFill: 1, fillInterval: .seconds(1)), now: at(0))
        #expect(bucket.tryConsume(now: at(0)))
        for step in 1...9 { #expect(!bucket.tryConsume(now: at(Int64(step) * 100))) }
        #expect(bucket.tryConsume(now: at(1000)))
    }

    @Test func enforcedLimitRepliesWith429() throws {
        let filter = try LocalRateLimitFilter(config: config(), stats: stats, now: at(0))
        var random = ScriptedRandom([])
        #expect(filter.decodeHeaders(now: at(0), random: &random).localReply == nil)
        #expect(filter.decodeHeaders(now: at(1), random: &random).localReply == nil)
        let limited = filter.decodeHeaders(now: at(2), random: &random)
        #expect(limited.localReply == FilterLocalReply(status: 429, body: "local_rate_limited", details: "local_rate_limited",
                                                       flags: .rateLimited))
        #expect(limited.replyHeadersToAdd.map(\.name) == ["x-local-rate-limit"])
        #expect(limited.localReply?.headers.contains { $0.name == "x-envoy-ratelimited" } == false)
        #expect(count("enabled") == 3)
        #expect(count("ok") == 2)
        #expect(count("rate_limited") == 1)
        #expect(count("enforced") == 1)
        #expect(stats.snapshot().contains { $0.name.description == "http_local_rate_limiter.http_local_rate_limit.enforced" })
        // After the fill interval, allowed again.
        #expect(filter.decodeHeaders(now: at(1010), random: &random).localReply == nil)
    }

    @Test func unsetFractionsMeanTheFilterDoesNothing() throws {
        let filter = try LocalRateLimitFilter(config: config(maxTokens: 1, enabled: .none, enforced: .none), stats: stats, now: at(0))
        var random = ScriptedRandom([])
        for step in 0..<5 { #expect(filter.decodeHeaders(now: at(Int64(step)), random: &random).localReply == nil) }
        #expect(count("enabled") == 0)
        #expect(count("ok") == 0)
    }

    @Test func enabledButNotEnforcedOnlyCountsAndAddsRequestHeaders() throws {
        let filter = try LocalRateLimitFilter(
            config: config(maxTokens: 1, enforced: FractionalPercent(numerator: 50)), stats: stats, now: at(0))
        // Draws: request 1 no draw needed (ok); request 2 enforced draw 60 (not < 50): not enforced;
        // request 3 enforced draw 10: enforced.
        var random = ScriptedRandom([60, 10])
        #expect(filter.decodeHeaders(now: at(0), random: &random).localReply == nil)
        let shadowed = filter.decodeHeaders(now: at(1), random: &random)
        #expect(shadowed.localReply == nil)
        #expect(shadowed.requestHeadersToAdd.map(\.name) == ["x-would-limit"])
        #expect(filter.decodeHeaders(now: at(2), random: &random).localReply?.status == 429)
        #expect(count("rate_limited") == 2)
        #expect(count("enforced") == 1)
    }

    @Test func perConnectionBucketsAreSeparate() throws {
        var perConnection = config(maxTokens: 1)
        perConnection.perDownstreamConnection = true
        let filter = try LocalRateLimitFilter(config: perConnection, stats: stats, now: at(0))
        let first = LocalRateLimitConnectionBuckets()
        let second = LocalRateLimitConnectionBuckets()
        var random = ScriptedRandom([])
        #expect(filter.decodeHeaders(connection: first, now: at(0), random: &random).localReply == nil)
        #expect(filter.decodeHeaders(connection: first, now: at(1), random: &random).localReply != nil)
        #expect(filter.decodeHeaders(connection: second, now: at(2), random: &random).localReply == nil)
    }

    @Test func routeOverrideHasItsOwnBucketAndStats() throws {
        let filter = try LocalRateLimitFilter(config: config(maxTokens: 100), stats: stats, now: at(0))
        var routeConfig = config(maxTokens: 1)
        routeConfig.statPrefix = "route_limit"
        let route = try LocalRateLimitFilter(config: routeConfig, stats: stats, now: at(0), perRoute: true)
        var random = ScriptedRandom([])
        #expect(filter.decodeHeaders(routeOverride: route, now: at(0), random: &random).localReply == nil)
        #expect(filter.decodeHeaders(routeOverride: route, now: at(1), random: &random).localReply != nil)
        #expect(filter.decodeHeaders(now: at(2), random: &random).localReply == nil)
        #expect(stats.counter(LocalRateLimitFilter.statName("route_limit", "rate_limited")).value == 1)
    }

    @Test func xRateLimitHeaders() throws {
        var withHeaders = config(maxTokens: 5, interval: .seconds(60))
        withHeaders.enableXRateLimitHeaders = true
        let filter = try LocalRateLimitFilter(config: withHeaders, stats: stats, now: at(0))
        var random = ScriptedRandom([])
        let decision = filter.decodeHeaders(now: at(0), random: &random)
        // One token a minute: 4 left after one request; 20 s later a third of a token more; a minute later 5.
        let headers = decision.responseHeaders(now: at(20_000))
        #expect(headers.map(\.name) == ["x-ratelimit-limit", "x-ratelimit-remaining"])
        #expect(headers.map(\.value) == ["5", "4"])
        #expect(decision.responseHeaders(now: at(60_001)).map(\.value) == ["5", "5"])
    }

    @Test func invalidBucketsAreRejected() {
        #expect(throws: FilterConfigError(field: "envoy.filters.http.local_ratelimit.token_bucket.fill_interval",
                                          problem: "must be greater than 0")) {
            _ = try LocalRateLimitFilter(config: config(interval: .zero), stats: StatsStore(), now: .now())
        }
        #expect(throws: FilterConfigError.self) {
            _ = try LocalRateLimitFilter(config: LocalRateLimitConfig(statPrefix: "x", tokenBucket: nil), stats: StatsStore(),
                                         now: .now(), perRoute: true)
        }
    }
}
