import Foundation
import SluiceLinux

/// Frames upgrade messages into SOCK_SEQPACKET records. A message larger than one record (the
/// inventory with the xDS state, a batch of connections with their unwritten bytes) is split
/// into chunks, and its descriptors into bounded batches (at most `maxDescriptorsPerRecord` per
/// record); the receiver reassembles them. Header (20 bytes, big-endian): magic `SLCU`,
/// version, type, flags (bit 0: more chunks follow), reserved, message sequence number,
/// chunk length. Anything that does not fit this framing is an error naming what is wrong.
public enum UpgradeWireCodec {
    static let magic: [UInt8] = Array("SLCU".utf8)
    static let headerSize = 20
    /// Payload bytes per record; well under the socket's send buffer.
    public static let maxChunk = 48 * 1024
    public static let maxDescriptorsPerRecord = 64
    /// Largest whole message accepted (bounds memory on a broken peer).
    public static let maxMessageSize = 512 * 1024 * 1024
    static let moreFlag: UInt16 = 1

    /// One record: bytes and the descriptors attached to it.
    public struct Record: Equatable, Sendable {
        public var bytes: [UInt8]
        public var descriptors: [CInt]
    }

    /// The records of one message, in order.
    public static func encode(_ message: UpgradeMessage, sequence: UInt32, descriptors: [CInt]) throws -> [Record] {
        guard descriptors.count == message.descriptorCount else {
            throw UpgradeProtocolError.descriptorCount(message: message.name, expected: message.descriptorCount, actual: descriptors.count)
        }
        let payload = try payload(of: message)
        guard payload.count <= maxMessageSize else { throw UpgradeProtocolError.tooLarge(payload.count) }
        let chunks = max(1, (payload.count + maxChunk - 1) / maxChunk)
        let descriptorBatches = (descriptors.count + maxDescriptorsPerRecord - 1) / maxDescriptorsPerRecord
        let count = max(chunks, descriptorBatches)
        var records: [Record] = []
        for index in 0..<count {
            let start = min(index * maxChunk, payload.count)
            let end = min(start + maxChunk, payload.count)
            let fdStart = min(index * maxDescriptorsPerRecord, descriptors.count)
            let fdEnd = min(fdStart + maxDescriptorsPerRecord, descriptors.count)
            var bytes = magic
            BigEndianBytes.append(UpgradeMessage.version, to: &bytes)
            BigEndianBytes.append(message.typeCode, to: &bytes)
            BigEndianBytes.append(index < count - 1 ? moreFlag : 0, to: &bytes)
            BigEndianBytes.append(UInt16(0), to: &bytes)
            BigEndianBytes.append(sequence, to: &bytes)
            BigEndianBytes.append(UInt32(end - start), to: &bytes)
            bytes += payload[start..<end]
            records.append(Record(bytes: bytes, descriptors: Array(descriptors[fdStart..<fdEnd])))
        }
        return records
    }

    /// Reassembles records into messages; feed records in arrival order.
    public struct Decoder {
        private var pending: (type: UInt16, sequence: UInt32, payload: [UInt8], descriptors: [CInt])?

        public init() {}

        /// The message this record completes, or nil while more chunks are expected. On an
        /// error the descriptors received so far for the message are returned for closing.
        public mutating func feed(_ record: Record) throws -> (message: UpgradeMessage, descriptors: [CInt])? {
            do {
                return try decode(record)
            } catch {
                let received = (pending?.descriptors ?? []) + record.descriptors
                pending = nil
                throw UpgradeDecodingFailure(error: error as? UpgradeProtocolError ?? .badPayload(message: "?", detail: "\(error)"),
                                             descriptors: received)
            }
        }

        /// Descriptors of a message left incomplete (the peer went away mid-message).
        public mutating func abandon() -> [CInt] {
            defer { pending = nil }
            return pending?.descriptors ?? []
        }

        private mutating func decode(_ record: Record) throws -> (message: UpgradeMessage, descriptors: [CInt])? {
            let bytes = record.bytes
            guard bytes.count >= headerSize else { throw UpgradeProtocolError.truncated(bytes.count) }
            guard Array(bytes[0..<4]) == magic else { throw UpgradeProtocolError.badMagic }
            let version: UInt16 = BigEndianBytes.read(bytes, at: 4)
            guard version == UpgradeMessage.version else { throw UpgradeProtocolError.unsupportedVersion(version) }
            let type: UInt16 = BigEndianBytes.read(bytes, at: 6)
            let flags: UInt16 = BigEndianBytes.read(bytes, at: 8)
            let sequence: UInt32 = BigEndianBytes.read(bytes, at: 12)
            let length: UInt32 = BigEndianBytes.read(bytes, at: 16)
            guard Int(length) == bytes.count - headerSize else {
                throw UpgradeProtocolError.lengthMismatch(declared: Int(length), actual: bytes.count - headerSize)
            }
            var message = pending ?? (type, sequence, [], [])
            guard message.type == type, message.sequence == sequence else {
                throw UpgradeProtocolError.interleaved(expected: message.sequence, got: sequence)
            }
            message.payload += bytes[headerSize...]
            message.descriptors += record.descriptors
            guard message.payload.count <= maxMessageSize else { throw UpgradeProtocolError.tooLarge(message.payload.count) }
            if flags & moreFlag != 0 {
                pending = message
                return nil
            }
            pending = nil
            let decoded = try UpgradeWireCodec.message(type: type, payload: Data(message.payload))
            guard message.descriptors.count == decoded.descriptorCount else {
                throw UpgradeProtocolError.descriptorCount(
                    message: decoded.name, expected: decoded.descriptorCount, actual: message.descriptors.count)
            }
            return (decoded, message.descriptors)
        }
    }

    static func payload(of message: UpgradeMessage) throws -> [UInt8] {
        let encoder = JSONEncoder()
        let data: Data
        switch message {
        case .hello(let value): data = try encoder.encode(value)
        case .request(let value): data = try encoder.encode(value)
        case .refused(let value): data = try encoder.encode(value)
        case .inventory(let value): data = try encoder.encode(value)
        case .ready(let value): data = try encoder.encode(value)
        case .connections(let value): data = try encoder.encode(value)
        case .adopted(let value): data = try encoder.encode(value)
        case .counters(let value): data = try encoder.encode(value)
        case .done(let value): data = try encoder.encode(value)
        case .result(let value): data = try encoder.encode(value)
        }
        return Array(data)
    }

    static func message(type: UInt16, payload: Data) throws -> UpgradeMessage {
        func decode<T: Decodable>(_: T.Type, _ name: String) throws -> T {
            do {
                return try JSONDecoder().decode(T.self, from: payload)
            } catch {
                throw UpgradeProtocolError.badPayload(message: name, detail: "\(error)")
            }
        }
        switch type {
        case 1: return .hello(try decode(UpgradeMessage.Hello.self, "hello"))
        case 2: return .request(try decode(UpgradeMessage.Request.self, "request"))
        case 3: return .refused(try decode(UpgradeMessage.Refusal.self, "refused"))
        case 4: return .inventory(try decode(UpgradeMessage.Inventory.self, "inventory"))
        case 5: return .ready(try decode(UpgradeMessage.Ready.self, "ready"))
        case 6: return .connections(try decode(UpgradeMessage.ConnectionBatch.self, "connections"))
        case 7: return .adopted(try decode(UpgradeMessage.Adopted.self, "adopted"))
        case 8: return .counters(try decode(UpgradeMessage.Counters.self, "counters"))
        case 9: return .done(try decode(UpgradeMessage.Done.self, "done"))
        case 10: return .result(try decode(UpgradeMessage.Result.self, "result"))
        default: throw UpgradeProtocolError.unknownType(type)
        }
    }
}

/// A record that broke the framing, with the descriptors that had arrived (to be closed).
public struct UpgradeDecodingFailure: Error, CustomStringConvertible {
    public var error: UpgradeProtocolError
    public var descriptors: [CInt]
    public var description: String { error.description }
}

/// What is wrong with an upgrade-socket exchange.
public enum UpgradeProtocolError: Error, Equatable, CustomStringConvertible {
    case truncated(Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case lengthMismatch(declared: Int, actual: Int)
    case interleaved(expected: UInt32, got: UInt32)
    case unknownType(UInt16)
    case badPayload(message: String, detail: String)
    case tooLarge(Int)
    case descriptorCount(message: String, expected: Int, actual: Int)
    case unexpected(expected: String, got: String)
    case peerRejected(uid: UInt32)
    case timedOut(waitingFor: String)
    case closed(waitingFor: String)

    public var description: String {
        switch self {
        case .truncated(let count): return "record of \(count) bytes is shorter than the 20-byte header"
        case .badMagic: return "record does not start with the SLCU magic"
        case .unsupportedVersion(let version):
            return "peer speaks upgrade protocol version \(version), this build speaks \(UpgradeMessage.version)"
        case .lengthMismatch(let declared, let actual): return "header declares \(declared) payload bytes but the record has \(actual)"
        case .interleaved(let expected, let got): return "chunk of message \(got) arrived while message \(expected) was incomplete"
        case .unknownType(let type): return "unknown upgrade message type \(type)"
        case .badPayload(let message, let detail): return "bad \(message) payload: \(detail)"
        case .tooLarge(let size): return "message of \(size) bytes exceeds the limit"
        case .descriptorCount(let message, let expected, let actual):
            return "\(message) must carry \(expected) descriptor(s), carried \(actual)"
        case .unexpected(let expected, let got): return "expected \(expected), got \(got)"
        case .peerRejected(let uid): return "peer uid \(uid) is not allowed on the upgrade socket"
        case .timedOut(let waitingFor): return "timed out waiting for \(waitingFor)"
        case .closed(let waitingFor): return "peer closed the upgrade socket while this side waited for \(waitingFor)"
        }
    }
}
