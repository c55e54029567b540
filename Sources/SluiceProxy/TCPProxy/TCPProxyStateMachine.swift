/// The life of one proxied TCP connection, as a value type that turns events into actions.
/// Envoy's tcp_proxy semantics: the downstream is not read until an upstream connection exists,
/// failed connects are retried up to `max_connect_attempts`, half-close is forwarded in both
/// directions, and when one side goes away the other gets what is pending and is then closed.
struct TCPProxyStateMachine {
    enum Side: Equatable {
        case downstream, upstream

        var other: Side { self == .downstream ? .upstream : .downstream }
    }

    enum State: Equatable {
        case idle
        /// `downstreamInputClosed`: the client already sent FIN (NIO delivers end-of-input even
        /// while reading is off); it is forwarded once the upstream exists.
        case connecting(attempt: Int, downstreamInputClosed: Bool)
        case relaying(downstreamOpen: Bool, upstreamOpen: Bool)
        case closed
    }

    enum Action: Equatable {
        case none
        /// Open upstream connection attempt number `attempt` (1-based).
        case connect(attempt: Int)
        /// Both sides are connected: start reading each and forwarding to the other; then, if the
        /// downstream already half-closed, send FIN upstream.
        case startRelay(downstreamAlreadyClosed: Bool)
        /// The upstream connected after the downstream went away.
        case closeUpstream
        /// No attempt left: close the downstream.
        case giveUp
        /// The other side sent FIN: send FIN to `side` once its pending writes are out.
        case shutdownOutput(Side)
        /// The other side is gone: deliver what is pending to `side`, then close it.
        case flushAndClose(Side)
        /// Close both sides now (idle timeout, duration limit).
        case closeBoth
    }

    private(set) var state: State = .idle
    let maxConnectAttempts: Int

    init(maxConnectAttempts: Int) {
        self.maxConnectAttempts = max(1, maxConnectAttempts)
    }

    /// A connection taken over from another proxy process, already relaying both ways.
    static func adopted(maxConnectAttempts: Int) -> TCPProxyStateMachine {
        var machine = TCPProxyStateMachine(maxConnectAttempts: maxConnectAttempts)
        machine.state = .relaying(downstreamOpen: true, upstreamOpen: true)
        return machine
    }

    mutating func downstreamActive() -> Action {
        guard state == .idle else { return .none }
        state = .connecting(attempt: 1, downstreamInputClosed: false)
        return .connect(attempt: 1)
    }

    mutating func connectSucceeded() -> Action {
        switch state {
        case .connecting(_, let downstreamInputClosed):
            state = .relaying(downstreamOpen: true, upstreamOpen: true)
            return .startRelay(downstreamAlreadyClosed: downstreamInputClosed)
        default:
            return .closeUpstream
        }
    }

    mutating func connectFailed() -> Action {
        guard case .connecting(let attempt, let downstreamInputClosed) = state else { return .none }
        guard attempt < maxConnectAttempts else {
            state = .closed
            return .giveUp
        }
        state = .connecting(attempt: attempt + 1, downstreamInputClosed: downstreamInputClosed)
        return .connect(attempt: attempt + 1)
    }

    /// No host or no route: nothing to retry.
    mutating func noUpstream() -> Action {
        state = .closed
        return .giveUp
    }

    /// `side` sent FIN (half-close).
    mutating func inputClosed(_ side: Side) -> Action {
        switch state {
        case .connecting(let attempt, _) where side == .downstream:
            state = .connecting(attempt: attempt, downstreamInputClosed: true)
            return .none
        case .relaying:
            return .shutdownOutput(side.other)
        default:
            return .none
        }
    }

    /// `side`'s channel closed (both directions done, reset, or error).
    mutating func channelInactive(_ side: Side) -> Action {
        switch state {
        case .idle, .connecting:
            // Only the downstream exists before relaying; a pending connect is abandoned.
            state = .closed
            return .none
        case .relaying(var downstreamOpen, var upstreamOpen):
            let otherWasOpen = side == .downstream ? upstreamOpen : downstreamOpen
            if side == .downstream { downstreamOpen = false } else { upstreamOpen = false }
            state = downstreamOpen || upstreamOpen ? .relaying(downstreamOpen: downstreamOpen, upstreamOpen: upstreamOpen) : .closed
            return otherWasOpen ? .flushAndClose(side.other) : .none
        case .closed:
            return .none
        }
    }

    mutating func timedOut() -> Action {
        switch state {
        case .closed:
            return .none
        default:
            state = .closed
            return .closeBoth
        }
    }
}
