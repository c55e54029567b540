import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// Envoy's local rate limiter bucket: starts full, gains `tokens_per_fill` (capped at `max_tokens`) at
/// every `fill_interval` since it was made, and each allowed request takes one token.
///
/// Envoy refills from a timer; here the fills that are due are applied on each access, from the time the
/// caller passes in, which gives the same token counts at the same instants. One bucket is shared by all
/// event loops (a lock around a few integer operations).
public final class TokenBucketLimiter: Sendable {
    public let bucket: TokenBucket
    private struct State {
        var tokens: Int
        var lastFill: NIODeadline
    }
    private let state: NIOLockedValueBox<State>

    public init(_ bucket: TokenBucket, now: NIODeadline) {
        self.bucket = bucket
        state = NIOLockedValueBox(State(tokens: bucket.maxTokens, lastFill: now))
    }

    /// Takes a token if there is one.
    public func tryConsume(now: NIODeadline) -> Bool {
        state.withLockedValue { state in
            refill(&state, now)
            guard state.tokens > 0 else { return false }
            state.tokens -= 1
            return true
        }
    }

    /// Tokens left (`x-ratelimit-remaining`).
    public func remainingTokens(now: NIODeadline) -> Int {
        state.withLockedValue { state in
            refill(&state, now)
            return state.tokens
        }
    }

    /// Whole seconds to the next fill, as Envoy computes `x-ratelimit-reset`: the interval minus the
    /// whole seconds since the last fill, truncated to seconds.
    public func secondsUntilReset(now: NIODeadline) -> Int64 {
        state.withLockedValue { state in
            refill(&state, now)
            let elapsedSeconds = (now - state.lastFill).nanoseconds / 1_000_000_000
            let interval = bucket.fillInterval.components
            let intervalNanos = interval.seconds * 1_000_000_000 + interval.attoseconds / 1_000_000_000
            return (intervalNanos - elapsedSeconds * 1_000_000_000) / 1_000_000_000
        }
    }

    private func refill(_ state: inout State, _ now: NIODeadline) {
        let interval = bucket.fillInterval.components
        let intervalNanos = interval.seconds * 1_000_000_000 + interval.attoseconds / 1_000_000_000
        guard intervalNanos > 0 else { return }
        let elapsed = (now - state.lastFill).nanoseconds
        guard elapsed >= intervalNanos else { return }
        let fills = elapsed / intervalNanos
        let added = fills.multipliedReportingOverflow(by: Int64(bucket.tokensPerFill))
        state.tokens = added.overflow ? bucket.maxTokens : min(bucket.maxTokens, state.tokens + Int(clamping: added.partialValue))
        state.lastFill = state.lastFill + .nanoseconds(fills * intervalNanos)
    }
}
