import Foundation
import SluiceModel
import SluiceProxy
import Testing

@testable import SluiceUpgrade

@Suite struct UpgradeWireCodecTests {
    private func roundTrip(_ message: UpgradeMessage, descriptors: [CInt] = []) throws -> (UpgradeMessage, [CInt], Int) {
        let records = try UpgradeWireCodec.encode(message, sequence: 7, descriptors: descriptors)
        var decoder = UpgradeWireCodec.Decoder()
        var result: (UpgradeMessage, [CInt])?
        for (index, record) in records.enumerated() {
            #expect(record.bytes.count <= UpgradeWireCodec.headerSize + UpgradeWireCodec.maxChunk)
            #expect(record.descriptors.count <= UpgradeWireCodec.maxDescriptorsPerRecord)
            let decoded = try decoder.feed(record)
            #expect((decoded == nil) == (index < records.count - 1))
            if let decoded { result = (decoded.message, decoded.descriptors) }
        }
        let (decoded, fds) = try #require(result)
        return (decoded, fds, records.count)
    }

    @Test func smallMessagesTakeOneRecord() throws {
        let (decoded, _, count) = try roundTrip(.hello(.init(pid: 42, build: "sluice-A")))
        #expect(decoded == .hello(.init(pid: 42, build: "sluice-A")))
        #expect(count == 1)
    }

    @Test func largeBatchesAreChunkedAndDescriptorsBatched() throws {
        let endpoint = SocketEndpoint(address: .v4(0x0a00_0001), port: 8080)
        let connections = (0..<100).map { index in
            MigratedConnection(
                workload: "ns-\(index)", listener: "outbound", routeListener: "outbound", destination: endpoint, source: endpoint,
                cluster: "passthrough", host: endpoint, pendingToDownstream: Data(repeating: UInt8(index), count: 3000),
                pendingToUpstream: Data())
        }
        let descriptors = (0..<200).map { CInt($0 + 1000) }
        let (decoded, fds, count) = try roundTrip(.connections(.init(connections: connections)), descriptors: descriptors)
        #expect(decoded == .connections(.init(connections: connections)))
        #expect(fds == descriptors)
        #expect(count >= 4)
    }

    @Test func wrongDescriptorCountIsRefusedOnBothSides() throws {
        #expect(throws: UpgradeProtocolError.descriptorCount(message: "connections", expected: 0, actual: 1)) {
            try UpgradeWireCodec.encode(.connections(.init(connections: [])), sequence: 1, descriptors: [5])
        }
        var records = try UpgradeWireCodec.encode(.hello(.init(pid: 1, build: "")), sequence: 1, descriptors: [])
        records[0].descriptors = [9]
        var decoder = UpgradeWireCodec.Decoder()
        do {
            _ = try decoder.feed(records[0])
            Issue.record("a hello with a descriptor was accepted")
        } catch let failure as UpgradeDecodingFailure {
            #expect(failure.error == .descriptorCount(message: "hello", expected: 0, actual: 1))
            #expect(failure.descriptors == [9], "the stray descriptor is returned for closing")
        }
    }

    @Test func malformedRecordsNameWhatIsWrong() throws {
        var decoder = UpgradeWireCodec.Decoder()
        let good = try UpgradeWireCodec.encode(.ready(.init(listeners: 1, workloads: 1)), sequence: 3, descriptors: [])[0]
        func failure(_ bytes: [UInt8]) -> UpgradeProtocolError? {
            do {
                _ = try decoder.feed(.init(bytes: bytes, descriptors: []))
                return nil
            } catch let failure as UpgradeDecodingFailure {
                return failure.error
            } catch {
                return nil
            }
        }
        #expect(failure(Array(good.bytes.prefix(10))) == .truncated(10))
        #expect(failure([0x58] + good.bytes.dropFirst()) == .badMagic)
        var version = good.bytes
        version[5] = 9
        #expect(failure(version) == .unsupportedVersion(9))
        #expect(failure(good.bytes + [1]) == .lengthMismatch(declared: good.bytes.count - 20, actual: good.bytes.count - 19))
        var type = good.bytes
        type[7] = 99
        #expect(failure(type) == .unknownType(99))
        var payload = Array(good.bytes.prefix(20)) + Array("{}".utf8)
        payload[19] = 2
        if case .badPayload(let message, _)? = failure(payload) { #expect(message == "ready") } else { Issue.record("bad payload not reported") }
    }

    @Test func chunksOfDifferentMessagesMustNotInterleave() throws {
        let big = UpgradeMessage.counters(.init(Dictionary(uniqueKeysWithValues: (0..<3000).map {
            (StatName.cluster("cluster-\($0)", "upstream_cx_total"), UInt64($0))
        })))
        let first = try UpgradeWireCodec.encode(big, sequence: 1, descriptors: [])
        let other = try UpgradeWireCodec.encode(.ready(.init(listeners: 0, workloads: 0)), sequence: 2, descriptors: [])
        #expect(first.count > 1)
        var decoder = UpgradeWireCodec.Decoder()
        #expect(try decoder.feed(first[0]) == nil)
        #expect(throws: UpgradeDecodingFailure.self) { try decoder.feed(other[0]) }
    }
}

extension UpgradeDecodingFailure: Equatable {
    public static func == (lhs: UpgradeDecodingFailure, rhs: UpgradeDecodingFailure) -> Bool {
        lhs.error == rhs.error && lhs.descriptors == rhs.descriptors
    }
}
