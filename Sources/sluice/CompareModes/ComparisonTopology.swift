import Foundation
import SluiceInterception

/// The namespaces `compare-modes` measures in: a client workload and a server joined by a
/// bridge namespace, and a node namespace for the agent and proxy. The client's programs also
/// run in a cgroup of their own (the ebpf mode captures by cgroup). Everything it creates
/// (namespaces, cgroup, processes, files) is removed by `teardown`, which also runs on
/// SIGINT/SIGTERM. Programs enter a namespace with `nsenter --net`, not `ip netns exec`, which
/// would remount /sys and hide the cgroup file system from them.
final class ComparisonTopology: @unchecked Sendable {
    static let serverAddress = "10.98.0.10"
    static let clientAddress = "10.98.0.11"

    let prefix = "slc\(getpid())"
    let directory: URL
    /// The client's cgroup v2 directory, nil where no cgroup v2 hierarchy is mounted.
    let clientCgroup: String?
    private let lock = NSLock()
    private var namespaces: [String] = []
    private var processes: [Process] = []

    var client: String { "\(prefix)-client" }
    var server: String { "\(prefix)-server" }
    var node: String { "\(prefix)-node" }

    init() throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("sluice-compare-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let name = "\(prefix)-client"
        clientCgroup = (try? CgroupV2.mountPoint()).map { "\($0)/\(name)" }
        do {
            if let clientCgroup { try CgroupV2.create(clientCgroup) }
            let bridge = try addNamespace("lan")
            try run(["ip", "-n", bridge, "link", "add", "br0", "type", "bridge"])
            try run(["ip", "-n", bridge, "link", "set", "br0", "up"])
            for (name, address) in [("server", Self.serverAddress), ("client", Self.clientAddress)] {
                let namespace = try addNamespace(name)
                let peer = "v\(name.prefix(1))"
                try run(["ip", "-n", namespace, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", bridge])
                try run(["ip", "-n", bridge, "link", "set", peer, "master", "br0", "up"])
                try run(["ip", "-n", namespace, "addr", "add", "\(address)/24", "dev", "eth0"])
                try run(["ip", "-n", namespace, "link", "set", "eth0", "up"])
            }
            _ = try addNamespace("node")
        } catch {
            teardown()
            throw error
        }
    }

    /// A namespace named `<prefix>-<label>` with loopback up.
    @discardableResult
    func addNamespace(_ label: String) throws -> String {
        let name = "\(prefix)-\(label)"
        try run(["ip", "netns", "add", name])
        lock.withLock { namespaces.append(name) }
        try run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name
    }

    func removeNamespace(_ name: String) {
        _ = try? CommandRunner.run(["ip", "netns", "del", name])
        lock.withLock { namespaces.removeAll { $0 == name } }
    }

    /// Starts a long-running program (pinned to `cpu` when given) in `namespace`, logging to a
    /// file. In the client namespace it also joins the client's cgroup unless `joinsClientCgroup`
    /// is false (a sidecar proxy is not the application).
    @discardableResult
    func spawn(_ name: String, in namespace: String, cpu: Int?, joinsClientCgroup: Bool = true, _ arguments: [String]) throws -> Process {
        let log = directory.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command(in: namespace, cpu: cpu, joinsClientCgroup: joinsClientCgroup, arguments)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lock.withLock { processes.append(process) }
        return process
    }

    /// Runs a program to completion in `namespace` and returns its output.
    @discardableResult
    func exec(_ namespace: String, cpu: Int? = nil, _ arguments: [String]) throws -> String {
        try run(command(in: namespace, cpu: cpu, arguments))
    }

    /// `arguments` inside `namespace`, pinned to `cpu`, and for the client inside its cgroup.
    private func command(in namespace: String, cpu: Int?, joinsClientCgroup: Bool = true, _ arguments: [String]) -> [String] {
        let entered = Self.pinned(cpu, ["nsenter", "--net=/run/netns/\(namespace)", "--"] + arguments)
        guard namespace == client, joinsClientCgroup, let clientCgroup else { return entered }
        return ["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", clientCgroup] + entered
    }

    func stop(_ process: Process) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func teardown() {
        let (started, created) = lock.withLock { (processes, namespaces) }
        for process in started.reversed() { stop(process) }
        for name in created.reversed() { _ = try? CommandRunner.run(["ip", "netns", "del", name]) }
        if let clientCgroup { try? CgroupV2.remove(clientCgroup) }
        lock.withLock {
            processes = []
            namespaces = []
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// The proxy and the load generator get a CPU each where there are two.
    static func pinned(_ cpu: Int?, _ arguments: [String]) -> [String] {
        guard let cpu, ProcessInfo.processInfo.activeProcessorCount > 1 else { return arguments }
        return ["taskset", "-c", "\(cpu)"] + arguments
    }

    @discardableResult
    private func run(_ arguments: [String]) throws -> String {
        try CommandRunner.check(arguments)
    }
}
