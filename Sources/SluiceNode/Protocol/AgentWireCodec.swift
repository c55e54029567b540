import Foundation
import SluiceLinux

/// Frames agent messages: a fixed 16-byte header (magic `SLCA`, version, type, request id,
/// payload length) followed by a JSON payload. SOCK_SEQPACKET keeps one frame per record, and
/// every mismatch (short record, wrong length, unknown type, a type newer than the record's
/// version, bad payload) is an error. The header version is the one that introduced the
/// message's type, so older peers keep understanding the messages they know; fields added
/// later to a payload are optional and ignored by older peers.
public enum AgentWireCodec {
    static let magic: [UInt8] = Array("SLCA".utf8)
    static let headerSize = 16
    /// Largest record either side accepts.
    public static let maxRecordSize = 64 * 1024

    public static func encode(_ message: AgentMessage, requestID: UInt32) throws -> [UInt8] {
        let payload = try payloadData(message)
        guard payload.count + headerSize <= maxRecordSize else { throw AgentProtocolError.tooLarge(payload.count) }
        var bytes = magic
        BigEndianBytes.append(message.introducedIn, to: &bytes)
        BigEndianBytes.append(message.typeCode, to: &bytes)
        BigEndianBytes.append(requestID, to: &bytes)
        BigEndianBytes.append(UInt32(payload.count), to: &bytes)
        bytes += payload
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> (message: AgentMessage, requestID: UInt32) {
        guard bytes.count >= headerSize else { throw AgentProtocolError.truncated(bytes.count) }
        guard Array(bytes[0..<4]) == magic else { throw AgentProtocolError.badMagic }
        let version: UInt16 = BigEndianBytes.read(bytes, at: 4)
        guard (1...AgentMessage.version).contains(version) else { throw AgentProtocolError.unsupportedVersion(version) }
        let type: UInt16 = BigEndianBytes.read(bytes, at: 6)
        let requestID: UInt32 = BigEndianBytes.read(bytes, at: 8)
        let length: UInt32 = BigEndianBytes.read(bytes, at: 12)
        guard Int(length) == bytes.count - headerSize else {
            throw AgentProtocolError.lengthMismatch(declared: Int(length), actual: bytes.count - headerSize)
        }
        let payload = Data(bytes[headerSize...])
        let message = try message(type: type, payload: payload)
        guard message.introducedIn <= version else {
            throw AgentProtocolError.typeNewerThanVersion(type: type, version: version)
        }
        return (message, requestID)
    }

    private static func payloadData(_ message: AgentMessage) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data: Data
        switch message {
        case .hello(let value): data = try encoder.encode(value)
        case .helloAck(let value): data = try encoder.encode(value)
        case .failure(let value): data = try encoder.encode(value)
        case .addWorkload(let value): data = try encoder.encode(value)
        case .deleteWorkload(let value): data = try encoder.encode(value)
        case .snapshotBegin(let value): data = try encoder.encode(value)
        case .ack(let value): data = try encoder.encode(value)
        case .serviceAddresses(let value): data = try encoder.encode(value)
        case .enroll(let value): data = try encoder.encode(value)
        case .unenroll(let value): data = try encoder.encode(value)
        case .result(let value): data = try encoder.encode(value)
        case .snapshotEnd, .listWorkloads: data = Data()
        }
        return Array(data)
    }

    private static func message(type: UInt16, payload: Data) throws -> AgentMessage {
        func decode<T: Decodable>(_: T.Type) throws -> T {
            do {
                return try JSONDecoder().decode(T.self, from: payload)
            } catch {
                throw AgentProtocolError.badPayload(type: type, detail: "\(error)")
            }
        }
        func empty(_ message: AgentMessage) throws -> AgentMessage {
            guard payload.isEmpty else { throw AgentProtocolError.badPayload(type: type, detail: "expected no payload") }
            return message
        }
        switch type {
        case 1: return .hello(try decode(Hello.self))
        case 2: return .helloAck(try decode(HelloAck.self))
        case 3: return .failure(try decode(Failure.self))
        case 10: return .addWorkload(try decode(AddWorkload.self))
        case 11: return .deleteWorkload(try decode(DeleteWorkload.self))
        case 12: return .snapshotBegin(try decode(SnapshotBegin.self))
        case 13: return try empty(.snapshotEnd)
        case 14: return .ack(try decode(Ack.self))
        case 15: return .serviceAddresses(try decode(ServiceAddresses.self))
        case 20: return .enroll(try decode(EnrollRequest.self))
        case 21: return .unenroll(try decode(UnenrollRequest.self))
        case 22: return try empty(.listWorkloads)
        case 23: return .result(try decode(ControlResult.self))
        default: throw AgentProtocolError.unknownType(type)
        }
    }
}

/// A malformed or unexpected agent-protocol record.
public enum AgentProtocolError: Error, Equatable, CustomStringConvertible {
    case truncated(Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case typeNewerThanVersion(type: UInt16, version: UInt16)
    case lengthMismatch(declared: Int, actual: Int)
    case unknownType(UInt16)
    case badPayload(type: UInt16, detail: String)
    case tooLarge(Int)
    case descriptorCount(type: UInt16, expected: Int, received: Int)
    case unexpected(String)
    case peerRejected(uid: UInt32)

    public var description: String {
        switch self {
        case .truncated(let count): return "record of \(count) bytes is shorter than the 16-byte header"
        case .badMagic: return "record does not start with the SLCA magic"
        case .unsupportedVersion(let version): return "unsupported protocol version \(version) (this build speaks \(AgentMessage.version))"
        case .typeNewerThanVersion(let type, let version):
            return "message type \(type) does not exist in protocol version \(version) named by the record"
        case .lengthMismatch(let declared, let actual): return "header declares \(declared) payload bytes but the record has \(actual)"
        case .unknownType(let type): return "unknown message type \(type)"
        case .badPayload(let type, let detail): return "bad payload for message type \(type): \(detail)"
        case .tooLarge(let size): return "payload of \(size) bytes exceeds the record limit"
        case .descriptorCount(let type, let expected, let received):
            return "message type \(type) must carry \(expected) descriptor(s), received \(received)"
        case .unexpected(let detail): return "unexpected message: \(detail)"
        case .peerRejected(let uid): return "peer uid \(uid) is not allowed on this socket"
        }
    }
}
