import NIOHTTP1
import SluiceModel

/// The retry decisions of one request, as Envoy's router makes them: which outcomes a policy
/// retries, how many retries remain, and the jittered exponential back-off between attempts.
struct RetryState: Sendable {
    /// What ended an attempt.
    enum Outcome: Sendable {
        case response(status: Int, headers: HTTPHeaders)
        case failure(UpstreamFailure)
        case perTryTimeout
    }

    enum Decision: Equatable, Sendable {
        case retry(after: Duration)
        case noRetry
    }

    let policy: RetryPolicy?
    private(set) var retriesUsed = 0

    init(policy: RetryPolicy?) {
        self.policy = policy
    }

    var retriesLeft: Int { max((policy?.numRetries ?? 0) - retriesUsed, 0) }

    /// Whether `outcome` is one the policy retries (ignoring the remaining count).
    func isRetriable(_ outcome: Outcome) -> Bool {
        guard let policy else { return false }
        let on = policy.retryOn
        switch outcome {
        case .failure(let failure):
            if on.contains(.fiveXX) || on.contains(.gatewayError) || on.contains(.reset) { return true }
            if failure.isConnectFailure, on.contains(.connectFailure) || on.contains(.resetBeforeRequest) { return true }
            return false
        case .perTryTimeout:
            return on.contains(.fiveXX) || on.contains(.gatewayError) || on.contains(.reset)
        case .response(let status, let headers):
            if on.contains(.fiveXX), status >= 500 { return true }
            if on.contains(.gatewayError), [502, 503, 504].contains(status) { return true }
            if on.contains(.retriable4xx), status == 409 { return true }
            if on.contains(.retriableStatusCodes), policy.retriableStatusCodes.contains(status) { return true }
            if on.contains(.envoyRateLimited), headers.contains(name: "x-envoy-ratelimited") { return true }
            if on.contains(.retriableHeaders),
               policy.retriableHeaders.contains(where: { HeaderMatching.matches($0, headers: headers) }) {
                return true
            }
            if let grpc = headers.first(name: "grpc-status").flatMap(Int.init) {
                switch grpc {
                case 1: return on.contains(.grpcCancelled)
                case 4: return on.contains(.grpcDeadlineExceeded)
                case 8: return on.contains(.grpcResourceExhausted)
                case 13: return on.contains(.grpcInternal)
                case 14: return on.contains(.grpcUnavailable)
                default: return false
                }
            }
            return false
        }
    }

    /// Decides after an attempt; consumes a retry when it says `.retry`. `random` in `0..<2^64`.
    mutating func decide(_ outcome: Outcome, random: UInt64) -> Decision {
        guard isRetriable(outcome), retriesLeft > 0, let policy else { return .noRetry }
        retriesUsed += 1
        return .retry(after: Self.backOff(attempt: retriesUsed, base: policy.backOffBase, max: policy.backOffMax, random: random))
    }

    /// Fully jittered exponential back-off: uniform in `[0, (2^n - 1) × base]`, capped at `max`.
    static func backOff(attempt: Int, base: Duration, max: Duration, random: UInt64) -> Duration {
        let baseMs = UInt64(base.components.seconds) * 1000 + UInt64(base.components.attoseconds / 1_000_000_000_000_000)
        let maxMs = UInt64(max.components.seconds) * 1000 + UInt64(max.components.attoseconds / 1_000_000_000_000_000)
        let ceiling = Swift.min(((UInt64(1) << UInt64(Swift.min(attempt, 32))) - 1) * Swift.max(baseMs, 1), Swift.max(maxMs, 1))
        return .milliseconds(Int64(random % (ceiling + 1)))
    }
}
