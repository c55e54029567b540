import Foundation
import SluiceLinux

/// One connection on the upgrade socket: sends and receives whole messages (chunked by the
/// codec) with their descriptors, waiting at most a given time for each.
public final class UpgradeLink: @unchecked Sendable {
    // Used by one thread at a time: the side of the handover that owns the link.
    public let socket: SeqpacketSocket
    private var decoder = UpgradeWireCodec.Decoder()
    private var sequence: UInt32 = 0

    public init(socket: SeqpacketSocket) {
        self.socket = socket
    }

    public static func connect(path: String) throws -> UpgradeLink {
        UpgradeLink(socket: try SeqpacketSocket.connect(path: path))
    }

    /// Refuses peers that are neither root nor this process's user.
    public func requireTrustedPeer() throws {
        let peer = try socket.peerCredentials()
        guard peer.isTrusted else { throw UpgradeProtocolError.peerRejected(uid: peer.uid) }
    }

    public var peerPID: Int32? { try? socket.peerCredentials().pid }

    /// Sends `message`; the descriptors are duplicated into the peer, the caller keeps its own.
    public func send(_ message: UpgradeMessage, descriptors: [CInt] = []) throws {
        sequence &+= 1
        for record in try UpgradeWireCodec.encode(message, sequence: sequence, descriptors: descriptors) {
            try socket.send(record.bytes, descriptors: record.descriptors)
        }
    }

    /// The next whole message and its descriptors (owned by the caller).
    public func receive(waitingFor what: String, timeout: Duration) throws -> (message: UpgradeMessage, descriptors: [CInt]) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero, socket.waitReadable(timeout: left) else {
                closeAll(decoder.abandon())
                throw UpgradeProtocolError.timedOut(waitingFor: what)
            }
            guard let record = try socket.receive(
                maxBytes: UpgradeWireCodec.headerSize + UpgradeWireCodec.maxChunk,
                maxDescriptors: UpgradeWireCodec.maxDescriptorsPerRecord)
            else {
                closeAll(decoder.abandon())
                throw UpgradeProtocolError.closed(waitingFor: what)
            }
            do {
                if let message = try decoder.feed(UpgradeWireCodec.Record(bytes: record.bytes, descriptors: record.descriptors)) {
                    return message
                }
            } catch let failure as UpgradeDecodingFailure {
                closeAll(failure.descriptors)
                throw failure.error
            }
        }
    }

    /// Ends the connection for both sides.
    public func close() {
        socket.shutdown()
    }
}

func closeAll(_ descriptors: [CInt]) {
    for fd in descriptors { close(fd) }
}
