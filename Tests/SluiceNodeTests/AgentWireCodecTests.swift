import Foundation
import SluiceLinux
import SluiceModel
@testable import SluiceNode
import Testing

@Suite struct AgentWireCodecTests {
    @Test func roundTripsEveryMessage() throws {
        let messages: [AgentMessage] = [
            .hello(Hello(role: .proxy, pid: 42)),
            .helloAck(HelloAck(agentPID: 7)),
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
