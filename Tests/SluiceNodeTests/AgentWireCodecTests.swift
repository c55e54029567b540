import Foundation
import SluiceLinux
import SluiceModel
@testable import SluiceNode
import Testing

@Suite struct AgentWireCodecTests {
    @Test func roundTripsEveryMessage() throws {
        let messages: [AgentMessage] = [
            .hello(Hello(role: .proxy, pid: 42)),
            .hello(Hello(role: .proxy, pid: 42, serviceAddresses: [SocketEndpoint("10.96.0.10:53")!, SocketEndpoint("[fd96::1]:80")!])),
            .helloAck(HelloAck(agentPID: 7)),
            .helloAck(HelloAck(agentPID: 7, version: nil)),
            .serviceAddresses(ServiceAddresses(addresses: [SocketEndpoint("10.96.0.10:53")!])),
            .serviceAddresses(ServiceAddresses(addresses: [])),
            .failure(Failure(message: "no")),
            .addWorkload(AddWorkload(identity: WorkloadIdentity(id: "w"), namespace: .init(device: 4, inode: 4026531840))),
            .deleteWorkload(DeleteWorkload(id: "w")),
            .snapshotBegin(SnapshotBegin(count: 3)),
            .snapshotEnd,
            .ack(Ack(error: nil)),
            .ack(Ack(error: "bind failed")),
            .enroll(EnrollRequest(netnsPath: "/run/netns/w", mode: .iptables, options: CaptureOptions(excludePorts: [22]))),
            .unenroll(UnenrollRequest(workload: "w")),
            .listWorkloads,
            .result(ControlResult(error: nil, workloads: [], proxyConnected: true)),
        ]
        for (index, message) in messages.enumerated() {
            let bytes = try AgentWireCodec.encode(message, requestID: UInt32(index))
            let decoded = try AgentWireCodec.decode(bytes)
            #expect(decoded.message == message)
            #expect(decoded.requestID == UInt32(index))
        }
    }

    @Test func framingErrorsAreRejected() throws {
        let good = try AgentWireCodec.encode(.snapshotBegin(SnapshotBegin(count: 1)), requestID: 1)
        #expect(throws: AgentProtocolError.truncated(5)) { try AgentWireCodec.decode(Array(good.prefix(5))) }
        #expect(throws: AgentProtocolError.lengthMismatch(declared: good.count - 16, actual: good.count - 17)) {
            try AgentWireCodec.decode(Array(good.dropLast()))
        }
        var badMagic = good
        badMagic[0] = 0
        #expect(throws: AgentProtocolError.badMagic) { try AgentWireCodec.decode(badMagic) }
        var future = good
        future[5] = 9
        #expect(throws: AgentProtocolError.unsupportedVersion(9)) { try AgentWireCodec.decode(future) }
        var unknown = good
        unknown[7] = 99
        #expect(throws: AgentProtocolError.unknownType(99)) { try AgentWireCodec.decode(unknown) }
        var garbage = try AgentWireCodec.encode(.snapshotBegin(SnapshotBegin(count: 1)), requestID: 1)
        garbage[garbage.count - 2] = UInt8(ascii: "x")
        #expect(throws: (any Error).self) { try AgentWireCodec.decode(garbage) }
    }

    /// Version 2 added `serviceAddresses` and optional fields; records of every type version 1
    /// knows still say version 1, and version 1 payloads still decode.
    @Test func versionOnePeersStayUnderstood() throws {
        let hello = try AgentWireCodec.encode(.hello(Hello(role: .proxy, pid: 1, serviceAddresses: [])), requestID: 0)
        #expect(hello[4] == 0 && hello[5] == 1, "a hello is a version 1 record")
        let update = try AgentWireCodec.encode(.serviceAddresses(ServiceAddresses(addresses: [])), requestID: 3)
        #expect(update[4] == 0 && update[5] == 2, "serviceAddresses is a version 2 record")

        var mislabelled = update
        mislabelled[5] = 1
        #expect(throws: AgentProtocolError.typeNewerThanVersion(type: 15, version: 1)) { try AgentWireCodec.decode(mislabelled) }

        func record(type: UInt16, json: String) -> [UInt8] {
            let payload = Array(json.utf8)
            var bytes = Array("SLCA".utf8) + [0, 1, UInt8(type >> 8), UInt8(type & 0xff), 0, 0, 0, 9]
            bytes += withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init)
            return bytes + payload
        }
        let oldHello = try AgentWireCodec.decode(record(type: 1, json: #"{"pid":5,"role":"proxy"}"#))
        #expect(oldHello.message == .hello(Hello(role: .proxy, pid: 5, serviceAddresses: nil)))
        let oldAck = try AgentWireCodec.decode(record(type: 2, json: #"{"agentPID":6}"#))
        #expect(oldAck.message == .helloAck(HelloAck(agentPID: 6, version: nil)))
        #expect(oldAck.requestID == 9)
    }

    @Test func descriptorsTravelAndCountsAreEnforced() throws {
        let (left, right) = try SeqpacketSocket.pair()
        let sender = AgentConnection(socket: left)
        let receiver = AgentConnection(socket: right)
        let namespace = try NetworkNamespace(path: "/proc/self/ns/net")
        try sender.send(
            .addWorkload(AddWorkload(identity: WorkloadIdentity(id: "w"), namespace: namespace.identity)),
            requestID: 5, descriptors: [namespace.descriptor])
        let frame = try #require(try receiver.receive())
        #expect(frame.descriptors.count == 1)
        let received = try NetworkNamespace(takingOwnershipOf: frame.descriptors[0])
        #expect(received.identity == namespace.identity)

        // An AddWorkload without its descriptor is a protocol error.
        try sender.send(.addWorkload(AddWorkload(identity: WorkloadIdentity(id: "w"), namespace: namespace.identity)), requestID: 6)
        #expect(throws: AgentProtocolError.descriptorCount(type: 10, expected: 1, received: 0)) { try receiver.receive() }
    }

    @Test func oversizedRecordsAreErrorsNotTruncation() throws {
        let (left, right) = try SeqpacketSocket.pair()
        try left.send([UInt8](repeating: 1, count: 2000))
        #expect(throws: SocketError.self) { try right.receive(maxBytes: 1000) }
    }

    @Test func peerCredentialsAreReported() throws {
        let (left, _) = try SeqpacketSocket.pair()
        let peer = try left.peerCredentials()
        #expect(peer.pid == getpid())
        #expect(peer.isTrusted)
    }
}
