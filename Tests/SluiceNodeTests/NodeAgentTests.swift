import Foundation
import SluiceInterception
import SluiceLinux
import SluiceModel
@testable import SluiceNode
import Synchronization
import Testing

/// A capture mode that records calls instead of touching the kernel.
final class RecordingCapture: CaptureMode, @unchecked Sendable {
    let name = CaptureModeName.iptables
    /// As the IPVS mode: captures the proxies' service addresses.
    let capturesServiceAddresses: Bool
    private let lock = NSLock()
    private var installed: Set<String> = []
    private var services: [String: [SocketEndpoint]] = [:]
    private(set) var calls: [String] = []

    init(capturesServiceAddresses: Bool = false) {
        self.capturesServiceAddresses = capturesServiceAddresses
    }

    func install(_ target: CaptureTarget) throws {
        lock.withLock {
            installed.insert(target.netnsPath)
            services[target.netnsPath] = target.serviceAddresses
            calls.append("install \(target.netnsPath)")
        }
    }

    /// The service addresses of each namespace's last install.
    var serviceAddresses: [String: [SocketEndpoint]] { lock.withLock { services } }

    func remove(_ target: CaptureTarget) throws {
        lock.withLock { installed.remove(target.netnsPath); calls.append("remove \(target.netnsPath)") }
    }

    func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        lock.withLock { installed.contains(target.netnsPath) ? .installed : .absent }
    }

    var installedPaths: Set<String> { lock.withLock { installed } }
}

/// A proxy stand-in that records the workloads it was given.
final class RecordingHost: WorkloadHost, @unchecked Sendable {
    private let lock = NSLock()
    private var served: [String: NetworkNamespace.Identity] = [:]
    var failWith: String?

    func addWorkload(_ identity: WorkloadIdentity, namespace: NetworkNamespace, inbound: InboundDelivery) throws {
        if let failWith { throw AgentError(failWith) }
        lock.withLock { served[identity.id] = namespace.identity }
    }

    func removeWorkload(id: String) { lock.withLock { served[id] = nil } }

    func retainWorkloads(_ ids: Set<String>) { lock.withLock { served = served.filter { ids.contains($0.key) } } }

    var workloads: Set<String> { lock.withLock { Set(served.keys) } }
}

@Suite(.serialized) struct NodeAgentTests {
    let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("sluice-agent-\(UUID().uuidString)")

    private func agent(_ capture: RecordingCapture) -> NodeAgent {
        NodeAgent(configuration: .init(
            socketPath: directory.appendingPathComponent("agent.sock").path,
            stateDirectory: directory.appendingPathComponent("state"),
            proxyTimeout: .seconds(5),
            captureMode: { _ in capture }))
    }

    private var socketPath: String { directory.appendingPathComponent("agent.sock").path }
    private let netns = "/proc/self/ns/net"

    @Test func enrollmentWaitsForAProxyThenCaptures() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let capture = RecordingCapture()
        let node = agent(capture)
        try node.start()
        defer { node.stop(removeCapture: false) }

        let enrolled = try AgentControlClient.send(
            .enroll(EnrollRequest(netnsPath: netns, mode: .iptables, options: CaptureOptions(), identity: WorkloadIdentity(id: "w1"))),
            socketPath: socketPath)
        #expect(enrolled.error == nil)
        #expect(enrolled.workloads.first?.state == .waitingForProxy, "no proxy yet: nothing is captured")
        #expect(capture.installedPaths.isEmpty)

        let host = RecordingHost()
        let client = AgentClient(socketPath: socketPath, host: host)
        client.start()
        defer { client.stop() }
        try waitFor { host.workloads == ["w1"] && capture.installedPaths == [netns] }
        let listed = try AgentControlClient.send(.listWorkloads, socketPath: socketPath)
        #expect(listed.proxyConnected)
        #expect(listed.workloads.map(\.state) == [.captured])

        let removed = try AgentControlClient.send(.unenroll(UnenrollRequest(workload: "w1")), socketPath: socketPath)
        #expect(removed.error == nil)
        #expect(capture.installedPaths.isEmpty)
        try waitFor { host.workloads.isEmpty }
    }

    @Test func aProxyThatCannotServeFailsTheEnrollment() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let capture = RecordingCapture()
        let node = agent(capture)
        try node.start()
        defer { node.stop(removeCapture: false) }
        let host = RecordingHost()
        host.failWith = "cannot listen on 0.0.0.0:15001"
        let client = AgentClient(socketPath: socketPath, host: host)
        client.start()
        defer { client.stop() }
        try waitFor { node.proxyConnected }
        let result = try AgentControlClient.send(
            .enroll(EnrollRequest(netnsPath: netns, mode: .iptables, options: CaptureOptions(), identity: WorkloadIdentity(id: "w1"))),
            socketPath: socketPath)
        #expect(result.error?.contains("cannot listen") == true)
        #expect(capture.installedPaths.isEmpty, "no rules without a listener behind them")
        #expect(try AgentControlClient.send(.listWorkloads, socketPath: socketPath).workloads.isEmpty)
    }

    @Test func restartRepairsCaptureAndReplaysToTheProxy() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let capture = RecordingCapture()
        let host = RecordingHost()
        let client = AgentClient(socketPath: socketPath, host: host)
        do {
            let node = agent(capture)
            try node.start()
            client.start()
            try waitFor { node.proxyConnected }
            _ = try AgentControlClient.send(
                .enroll(EnrollRequest(netnsPath: netns, mode: .iptables, options: CaptureOptions(), identity: WorkloadIdentity(id: "w1"))),
                socketPath: socketPath)
            node.stop(removeCapture: false)
        }
        defer { client.stop() }
        // Someone flushed the rules while the agent was down; the proxy still serves w1.
        try capture.remove(CaptureTarget(netnsPath: netns))
        #expect(host.workloads == ["w1"])
        let restarted = agent(capture)
        try restarted.start()
        defer { restarted.stop(removeCapture: true) }
        #expect(capture.installedPaths == [netns], "restart repairs capture from the state file")
        try waitFor { restarted.proxyConnected }
        #expect(try AgentControlClient.send(.listWorkloads, socketPath: socketPath).workloads.map(\.state) == [.captured])
        #expect(host.workloads == ["w1"])
    }

    @Test func theProxysServiceAddressesAreCapturedAndFollowItsConfiguration() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let capture = RecordingCapture(capturesServiceAddresses: true)
        let node = agent(capture)
        try node.start()
        defer { node.stop(removeCapture: false) }
        let dns = SocketEndpoint("10.96.0.10:53")!, web = SocketEndpoint("[fd96::1]:80")!
        let client = AgentClient(socketPath: socketPath, host: RecordingHost(), serviceAddresses: [dns])
        client.start()
        defer { client.stop() }
        try waitFor { node.proxyConnected }
        let enrolled = try AgentControlClient.send(
            .enroll(EnrollRequest(netnsPath: netns, mode: .ipvs, options: CaptureOptions(), identity: WorkloadIdentity(id: "w1"))),
            socketPath: socketPath)
        #expect(enrolled.error == nil)
        #expect(capture.serviceAddresses[netns] == [dns], "the hello's addresses are captured")
        #expect(enrolled.workloads.first?.proxyServiceAddresses == [dns])

        // An xDS update adds a service: the agent reprograms the workload.
        client.publishServiceAddresses([dns, web])
        try waitFor { capture.serviceAddresses[netns] == [dns, web] }
        try waitFor { (try? AgentControlClient.send(.listWorkloads, socketPath: socketPath))?.workloads.first?.proxyServiceAddresses == [dns, web] }
        let installs = capture.calls.count
        client.publishServiceAddresses([dns, web])  // unchanged: nothing to do
        client.publishServiceAddresses([web])
        try waitFor { capture.serviceAddresses[netns] == [web] }
        #expect(capture.calls.count == installs + 1, "\(capture.calls)")
    }

    @Test func garbageFromAPeerIsRefusedWithoutCrashing() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let node = agent(RecordingCapture())
        try node.start()
        defer { node.stop(removeCapture: false) }
        let socket = try SeqpacketSocket.connect(path: socketPath)
        try socket.send(Array("not a frame".utf8))
        #expect(socket.waitReadable(timeout: .seconds(5)))
        let answer = try #require(try AgentConnection(socket: socket).receive())
        guard case .failure(let failure) = answer.message else {
            Issue.record("expected a failure message, got \(answer.message)")
            return
        }
        #expect(failure.message.contains("header") || failure.message.contains("magic"))
        // The agent still serves others.
        #expect(try AgentControlClient.send(.listWorkloads, socketPath: socketPath).error == nil)
    }

    private func waitFor(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(10)
        while !condition() {
            guard Date() < deadline else { throw AgentError("condition not met within 10s") }
            usleep(20_000)
        }
    }
}
