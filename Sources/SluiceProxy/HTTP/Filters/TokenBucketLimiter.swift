import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// Envoy's local rate limit bucket since 1.31 (`AtomicTokenBucket`; the timer-based one is gone in 1.40):
/// starts full with `max_tokens` and refills continuously at `tokens_per_fill / fill_interval` tokens per
/// second, capped at `max_tokens`; each allowed request takes one whole token.
///
/// Like Envoy it keeps a single "time at which the bucket was empty" rather than a token count, so a
/// refill needs no timer. One bucket is shared by all event loops (a lock around a few float operations);
/// time comes from the caller so tests can move it.
public final class TokenBucketLimiter: Sendable {
    public let bucket: TokenBucket
    private let origin: NIODeadline
    private let fillRate: Double
    private let maxTokens: Double
    /// Seconds since `origin` at which the bucket would have been empty.
    private let emptyAt: NIOLockedValueBox<Double>

    public init(_ bucket: TokenBucket, now: NIODeadline) {
        self.bucket = bucket
        origin = now
        let interval = bucket.fillInterval.components
        let seconds = Double(interval.seconds) + Double(interval.attoseconds) / 1e18
        fillRate = seconds > 0 ? Double(bucket.tokensPerFill) / seconds : .infinity
        maxTokens = Double(bucket.maxTokens)
        emptyAt = NIOLockedValueBox(fillRate.isFinite ? -maxTokens / fillRate : 0)
    }

    private func seconds(_ now: NIODeadline) -> Double { Double((now - origin).nanoseconds) / 1e9 }

    private func tokens(at now: Double, emptyAt: Double) -> Double {
        fillRate.isFinite ? min(maxTokens, (now - emptyAt) * fillRate) : maxTokens
    }

    /// Takes a token if there is a whole one.
    public func tryConsume(now: NIODeadline) -> Bool {
        let time = seconds(now)
        return emptyAt.withLockedValue { emptyAt in
            let available = tokens(at: time, emptyAt: emptyAt)
            let taken: Double = available >= 1 ? 1 : 0
            if fillRate.isFinite { emptyAt = time - (available - taken) / fillRate }
            return taken == 1
        }
    }

    /// Whole tokens left (`x-ratelimit-remaining`).
    public func remainingTokens(now: NIODeadline) -> Int {
        let time = seconds(now)
        return Int(emptyAt.withLockedValue { tokens(at: time, emptyAt: $0) })
    }
}
