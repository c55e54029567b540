import Foundation
import SluiceLinux

/// One end of an agent-socket connection: frames messages onto a seqpacket socket and checks
/// that each carries exactly the descriptors its type requires.
public final class AgentConnection: Sendable {
    /// A received message with its request id and descriptors (owned by the receiver).
    public struct Frame: Sendable {
        public var message: AgentMessage
        public var requestID: UInt32
        public var descriptors: [CInt]
    }

    public let socket: SeqpacketSocket

    public init(socket: SeqpacketSocket) {
        self.socket = socket
    }

    public func send(_ message: AgentMessage, requestID: UInt32, descriptors: [CInt] = []) throws {
        try socket.send(try AgentWireCodec.encode(message, requestID: requestID), descriptors: descriptors)
    }

    /// The next frame, or nil when the peer closed the connection.
    public func receive() throws -> Frame? {
        guard let record = try socket.receive(maxBytes: AgentWireCodec.maxRecordSize) else { return nil }
        do {
            let (message, requestID) = try AgentWireCodec.decode(record.bytes)
            guard record.descriptors.count == message.descriptorCount else {
                throw AgentProtocolError.descriptorCount(
                    type: message.typeCode, expected: message.descriptorCount, received: record.descriptors.count)
            }
            return Frame(message: message, requestID: requestID, descriptors: record.descriptors)
        } catch {
            for fd in record.descriptors { Glibc.close(fd) }
            throw error
        }
    }

    /// Refuses peers that are neither root nor this process's user.
    public func requireTrustedPeer() throws {
        let peer = try socket.peerCredentials()
        guard peer.isTrusted else { throw AgentProtocolError.peerRejected(uid: peer.uid) }
    }

    public func close() {
        socket.shutdown()
    }
}
