import Foundation

/// A private network built for one test: a bridge namespace and host namespaces attached to
/// it by veth pairs created directly inside those namespaces (the host's own network is never
/// touched). Addresses: 10.77.0.x/24 and fd77::x/64. Every namespace also gets its own cgroup
/// v2 directory, and the processes started "in" a namespace run in its cgroup too (the eBPF
/// capture mode hooks cgroups). Everything is removed by `teardown`.
final class Topology: @unchecked Sendable {
    struct Host {
        let namespace: String
        let ipv4: String
        let ipv6: String
        /// The cgroup v2 directory this host's processes run in (nil without cgroup v2).
        let cgroup: String?
        var netnsPath: String { "/run/netns/\(namespace)" }
    }

    let prefix: String
    let directory: URL
    private(set) var namespaces: [String] = []
    private(set) var processes: [BackgroundProcess] = []
    /// Processes started for the test by another process (a new proxy the running one
    /// started during a hot upgrade), ended by PID at teardown.
    private(set) var adoptedPIDs: [Int32] = []
    /// Namespace → the cgroup its processes run in.
    private(set) var cgroups: [String: String] = [:]
    private var nextAddress = 10
    private let bridge: String

    private static let counter = Counter()

    init(_ label: String) throws {
        prefix = "slt\(getpid() % 100_000)x\(Self.counter.next())"
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(prefix)-\(label)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        bridge = "\(prefix)-br"
        do {
            try addNamespace(bridge)
            try Shell.check(["ip", "-n", bridge, "link", "add", "br0", "type", "bridge"])
            try Shell.check(["ip", "-n", bridge, "link", "set", "br0", "up"])
        } catch {
            teardown()
            throw error
        }
    }

    /// A namespace with only loopback (where the proxy runs, for instance).
    @discardableResult
    func addNamespace(_ name: String) throws -> String {
        try Shell.check(["ip", "netns", "add", name])
        namespaces.append(name)
        try Shell.check(["ip", "-n", name, "link", "set", "lo", "up"])
        if let root = Self.cgroupRoot {
            let path = "\(root)/\(prefix)/\(name)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            cgroups[name] = path
        }
        return name
    }

    /// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid
    /// systems), from /proc/mounts.
    static let cgroupRoot: String? = {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }()

    /// `arguments` run inside `namespace` and, when it has one, its cgroup. `nsenter --net`
    /// rather than `ip netns exec`, which remounts /sys and so hides the cgroup file system
    /// from the agent.
    func command(in namespace: String, _ arguments: [String]) -> [String] {
        let enter = ["nsenter", "--net=/run/netns/\(namespace)", "--"] + arguments
        guard let cgroup = cgroups[namespace] else { return enter }
        return ["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", cgroup] + enter
    }

    /// A host attached to the bridge, with IPv4 and IPv6 addresses.
    func addHost(_ label: String) throws -> Host {
        let name = "\(prefix)-\(label)"
        try addNamespace(name)
        let index = nextAddress
        nextAddress += 1
        let peer = "v\(index)"
        try Shell.check(["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", bridge])
        try Shell.check(["ip", "-n", bridge, "link", "set", peer, "master", "br0", "up"])
        try Shell.check(["ip", "-n", name, "addr", "add", "10.77.0.\(index)/24", "dev", "eth0"])
        try Shell.check(["ip", "-n", name, "addr", "add", "fd77::\(index)/64", "dev", "eth0", "nodad"])
        try Shell.check(["ip", "-n", name, "link", "set", "eth0", "up"])
        return Host(namespace: name, ipv4: "10.77.0.\(index)", ipv6: "fd77::\(index)", cgroup: cgroups[name])
    }

    /// Starts `arguments` inside `namespace`, logging to this topology's directory.
    @discardableResult
    func spawn(_ name: String, in namespace: String, _ arguments: [String]) throws -> BackgroundProcess {
        let process = try BackgroundProcess(command(in: namespace, arguments), name: name, logDirectory: directory)
        processes.append(process)
        return process
    }

    /// Runs a command inside `namespace` and returns its stdout.
    @discardableResult
    func exec(_ namespace: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> String {
        try Shell.check(command(in: namespace, arguments), timeout: timeout)
    }

    func execResult(_ namespace: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> Shell.Output {
        try Shell.run(command(in: namespace, arguments), timeout: timeout)
    }

    /// Makes `pid` one of this test's processes: recorded for `Scripts/test` and ended at teardown.
    func adopt(pid: Int32) {
        guard !adoptedPIDs.contains(pid) else { return }
        adoptedPIDs.append(pid)
        BackgroundProcess.record(pid)
    }

    /// Ends every process this topology started (by PID), then deletes its namespaces.
    func teardown() {
        // A new proxy that an old one started during a failed upgrade may never have been
        // reported to the test; its command line names this topology's files.
        for pid in Self.sluiceProcesses(mentioning: directory.path) where !adoptedPIDs.contains(pid) { adoptedPIDs.append(pid) }
        for pid in adoptedPIDs.reversed() { Self.end(pid: pid) }
        adoptedPIDs = []
        for process in processes.reversed() { process.stop() }
        for name in namespaces.reversed() { _ = try? Shell.run(["ip", "netns", "del", name]) }
        namespaces = []
        for cgroup in cgroups.values { Self.removeCgroup(cgroup) }
        if let root = Self.cgroupRoot, !cgroups.isEmpty { Self.removeCgroup("\(root)/\(prefix)") }
        cgroups = [:]
        if ProcessInfo.processInfo.environment["SLUICE_KEEP_TEST_LOGS"] == nil {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// sluice processes whose command line mentions `text`.
    private static func sluiceProcesses(mentioning text: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let command = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return command.contains("sluice") && command.contains(text) && pid != getpid()
        }
    }

    /// SIGTERM, then SIGKILL after 5 s; only while the PID is still a sluice process (never a
    /// reused PID).
    private static func end(pid: Int32) {
        func isSluice() -> Bool {
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return command.contains("sluice")
        }
        guard isSluice() else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, isSluice() { usleep(50_000) }
        if isSluice() { kill(pid, SIGKILL) }
    }

    /// rmdir once the processes ended by `teardown` have left (their exit is asynchronous).
    private static func removeCgroup(_ path: String) {
        let deadline = Date().addingTimeInterval(5)
        while rmdir(path) != 0, errno == EBUSY, Date() < deadline {
            // Whatever is still in a cgroup this test created descends from the test's own
            // processes (a crash backtracer a killed proxy left behind, say): end it.
            let members = (try? String(contentsOfFile: "\(path)/cgroup.procs", encoding: .utf8)) ?? ""
            for pid in members.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            usleep(20_000)
        }
    }

    /// The logs of every process, for failure messages.
    var logs: String {
        processes.map { "--- \($0.name) (pid \($0.pid)) ---\n\($0.log.suffix(4000))" }.joined(separator: "\n")
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func next() -> Int { lock.withLock { value += 1; return value } }
    }
}

/// Builds a topology, runs `body`, and tears everything down even when `body` throws.
func withTopology<T>(_ label: String, _ body: (Topology) throws -> T) throws -> T {
    let topology = try Topology(label)
    defer { topology.teardown() }
    do {
        return try body(topology)
    } catch {
        throw ShellError("\(error)\n\(topology.logs)")
    }
}
