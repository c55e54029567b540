import Foundation
import SluiceLinux
import SluiceModel
import Synchronization

/// The agent's side of one connected proxy: sends requests and matches the proxy's acks to them
/// by request id. A reader thread receives the acks (and the proxy's own `serviceAddresses`
/// updates); requests block until theirs arrives.
final class ProxySession: Sendable {
    private struct Pending {
        var nextRequestID: UInt32 = 1
        var waiting: [UInt32: Waiter] = [:]
        var closed = false
    }

    /// One outstanding request.
    private final class Waiter: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        // Written once before `done` is signalled, read after waiting on it.
        var result: Result<Ack, any Error> = .failure(AgentProtocolError.unexpected("no answer"))
    }

    let connection: AgentConnection
    let peerPID: Int32
    private let pending = Mutex(Pending())

    init(connection: AgentConnection, peerPID: Int32) {
        self.connection = connection
        self.peerPID = peerPID
    }

    /// Whether the connection has closed.
    var isClosed: Bool { pending.withLock { $0.closed } }

    /// Starts the reader. `onServiceAddresses` gets each update with its request id, on the
    /// reader thread: it must not wait for this session's acks. `onClose` runs once when the
    /// proxy goes away or breaks the protocol.
    func startReader(
        onServiceAddresses: @escaping @Sendable (_ addresses: [SocketEndpoint], _ requestID: UInt32) -> Void,
        onClose: @escaping @Sendable (_ reason: String) -> Void
    ) {
        Thread {
            var reason = "connection closed"
            receiving: while true {
                do {
                    guard let frame = try self.connection.receive() else { break }
                    switch frame.message {
                    case .ack(let ack):
                        self.fulfil(frame.requestID, .success(ack))
                    case .serviceAddresses(let update):
                        onServiceAddresses(update.addresses, frame.requestID)
                    default:
                        reason = "proxy sent \(frame.message) instead of an ack"
                        break receiving
                    }
                } catch {
                    reason = "\(error)"
                    break
                }
            }
            self.close(reason: reason)
            onClose(reason)
        }.start()
    }

    /// Sends `message` and waits for the proxy's ack.
    func request(_ message: AgentMessage, descriptors: [CInt] = [], timeout: Duration) throws -> Ack {
        let waiter = Waiter()
        let requestID = try pending.withLock { state -> UInt32 in
            guard !state.closed else { throw AgentProtocolError.unexpected("proxy connection closed") }
            let id = state.nextRequestID
            state.nextRequestID &+= 1
            state.waiting[id] = waiter
            return id
        }
        do {
            try connection.send(message, requestID: requestID, descriptors: descriptors)
        } catch {
            _ = pending.withLock { $0.waiting.removeValue(forKey: requestID) }
            throw error
        }
        let (seconds, attoseconds) = timeout.components
        let deadline = DispatchTime.now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        if waiter.done.wait(timeout: deadline) == .timedOut {
            _ = pending.withLock { $0.waiting.removeValue(forKey: requestID) }
            throw AgentProtocolError.unexpected("proxy pid \(peerPID) did not answer within \(timeout)")
        }
        return try waiter.result.get()
    }

    private func fulfil(_ requestID: UInt32, _ result: Result<Ack, any Error>) {
        guard let waiter = pending.withLock({ $0.waiting.removeValue(forKey: requestID) }) else { return }
        waiter.result = result
        waiter.done.signal()
    }

    func close(reason: String) {
        let waiters = pending.withLock { state -> [UInt32: Waiter] in
            state.closed = true
            defer { state.waiting = [:] }
            return state.waiting
        }
        for (_, waiter) in waiters {
            waiter.result = .failure(AgentProtocolError.unexpected("proxy connection closed: \(reason)"))
            waiter.done.signal()
        }
        connection.close()
    }
}
