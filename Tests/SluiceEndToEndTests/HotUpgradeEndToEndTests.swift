import Foundation
import Testing

/// Hot upgrades of the node proxy under continuous load through enrolled workloads: keep-alive
/// requests, a new connection per request and 50 long-lived streams checksummed both ways.
@Suite(.serialized) struct HotUpgradeEndToEndTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    /// The second build the upgrades alternate with (Scripts/test builds it).
    static var variantBinary: String {
        ProcessInfo.processInfo.environment["SLUICE_VARIANT_BINARY"]
            ?? SluiceUnderTest.packageRoot.appendingPathComponent(".build/variant-b/sluice").path
    }

    @Test func twentyUpgradesUnderLoadLoseNothing() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.variantBinary),
                     "the second build is missing: \(Self.variantBinary) (Scripts/test builds it)")
        try withUpgradeTopology("upgrade20") { setup in
            let load = try setup.startLoad(streams: 50)
            let before = try setup.sluice.stat("sluice.workload.\(setup.app.namespace).outbound_cx_total")
            try load.mark("baseline")
            usleep(1_500_000)
            var migrated: [Int] = []
            var durations: [Double] = []
            for round in 1...20 {
                let binary = round % 2 == 1 ? Self.variantBinary : SluiceUnderTest.binary
                try load.mark("upgrade-\(round)")
                let started = Date()
                let outcome = try setup.upgrade(to: binary)
                durations.append(Date().timeIntervalSince(started) * 1000)
                #expect(outcome.succeeded, "upgrade \(round): \(outcome.output)")
                migrated.append(outcome.migrated)
                try load.mark("after-\(round)")
                usleep(300_000)
                #expect(setup.executable(of: outcome.pid) == URL(fileURLWithPath: binary).resolvingSymlinksInPath().path,
                        "upgrade \(round) runs \(binary)")
            }
            usleep(1_000_000)
            let report = try load.stop()
            #expect(report.failures.isEmpty, "\(report.failures.joined(separator: "\n"))")
            #expect(report.totals.streamsSurvived == 50 && report.totals.streamsOk == 50)
            #expect(report.totals.requestsOk > 0)
            // Every upgrade moved the streams and the keep-alive connections across.
            #expect(migrated.allSatisfy { $0 >= 50 }, "connections migrated per upgrade: \(migrated)")
            // Counters continue across processes.
            #expect(try setup.sluice.stat("sluice.workload.\(setup.app.namespace).outbound_cx_total") >= before)
            // The agent link moved too: a workload enrolled now is served by the newest process.
            let late = try setup.topology.addHost("late")
            try setup.sluice.enroll(late)
            let answer = try setup.sluice.client(from: late, to: "\(setup.server.ipv4):8090", "WHO")
            #expect(answer.contains("peer="), "\(answer)")
            print(Self.summary(report, migrated: migrated, durations: durations))
        }
    }

    @Test func failedUpgradesLeaveTheRunningProxyServing() throws {
        try withUpgradeTopology("upgrade-faults", proxyExtra: ["--upgrade-ready-timeout-s", "6"]) { setup in
            let load = try setup.startLoad(streams: 20)
            try load.mark("baseline")
            usleep(500_000)

            // A binary that exits at once.
            let broken = try setup.wrapper("broken", "exit 3")
            try load.mark("broken-binary")
            var outcome = try setup.upgrade(to: broken)
            #expect(!outcome.succeeded && outcome.output.contains("exited with status 3"), "\(outcome.output)")

            // A new process killed (SIGKILL) at each step before it owns anything.
            for step in ["connected", "inventory", "bound", "ready"] {
                let dying = try setup.wrapper("kill-\(step)", "SLUICE_TAKEOVER_FAULT=kill-\(step) exec \(SluiceUnderTest.binary) \"$@\"")
                try load.mark("kill-new-at-\(step)")
                outcome = try setup.upgrade(to: dying)
                #expect(!outcome.succeeded, "killed at \(step): \(outcome.output)")
                usleep(300_000)
            }

            // A new process that never becomes ready is ended after the ready timeout; meanwhile
            // a second upgrade is refused.
            let wedged = try setup.wrapper("hang", "SLUICE_TAKEOVER_FAULT=hang-inventory exec \(SluiceUnderTest.binary) \"$@\"")
            try load.mark("new-never-ready")
            let connectedBefore = setup.connectedCount()
            let pending = try setup.startUpgrade(to: wedged)
            try eventually("the wedged process connected") { setup.connectedCount() > connectedBefore }
            let second = try setup.upgrade(to: SluiceUnderTest.binary)
            #expect(!second.succeeded && second.output.contains("already running"), "\(second.output)")
            outcome = try setup.finish(pending)
            #expect(!outcome.succeeded && outcome.output.contains("timed out waiting for ready"), "\(outcome.output)")

            try load.mark("after-failures")
            usleep(800_000)
            // Every failure above left the original process serving, nothing lost.
            #expect(setup.sluice.proxy?.isRunning == true)

            // A new process killed while adopting the first batch: this process still holds
            // every connection it gave away and takes them all back.
            let adopting = try setup.wrapper("kill-adopting", "SLUICE_TAKEOVER_FAULT=kill-adopting exec \(SluiceUnderTest.binary) \"$@\"")
            try load.mark("kill-new-while-adopting")
            outcome = try setup.upgrade(to: adopting)
            #expect(!outcome.succeeded, "\(outcome.output)")
            try load.mark("after-adopting-failure")
            usleep(800_000)

            // A real upgrade, then the old process killed right after the hand-over.
            try load.mark("upgrade-then-kill-old")
            let oldPID = try #require(setup.sluice.proxy?.pid)
            outcome = try setup.upgrade(to: Self.variantBinary)
            #expect(outcome.succeeded, "\(outcome.output)")
            kill(oldPID, SIGKILL)
            try load.mark("after-old-killed")
            usleep(1_000_000)

            let report = try load.stop()
            #expect(report.failures.isEmpty, "\(report.failures.joined(separator: "\n"))")
            #expect(report.totals.streamsOk == 20)
            for label in ["after-failures", "after-adopting-failure", "after-old-killed"] {
                #expect((report.window(label)?.oneOk ?? 0) > 0, "new connections served in window \(label)")
            }
        }
    }

    static func summary(_ report: UpgradeLoadReport, migrated: [Int], durations: [Double]) -> String {
        let sorted = durations.sorted()
        let duration = sorted.isEmpty ? "-" : String(format: "%.0f/%.0f/%.0f ms", sorted[0], sorted[sorted.count / 2], sorted[sorted.count - 1])
        let steps = (1...20).compactMap { report.p99Step("upgrade-\($0)", over: "baseline") }
        let worst = steps.max().map { String(format: "%.1f", $0) } ?? "-"
        let baseline = report.window("baseline")?.latencyMs.p99.map { String(format: "%.1f", $0) } ?? "-"
        return """
            hot upgrade: 20 upgrades, \(report.totals.requestsOk) requests ok, refused \(report.totals.connectRefused), \
            resets \(report.totals.resets), failed \(report.totals.failed + report.totals.truncated + report.totals.wrongContent + report.totals.timeouts), \
            streams \(report.totals.streamsOk)/\(report.totals.streams) intact \
            (\(report.totals.streamBytesSent) bytes sent, \(report.totals.streamBytesReceived) received), \
            migrated per upgrade \(migrated.min() ?? 0)–\(migrated.max() ?? 0), upgrade took min/median/max \(duration) \
            (request to result, new binary start included), p99 baseline \(baseline) ms, worst p99 step \(worst) ms
            """
    }
}

/// A proxy with an agent, a client workload and a server workload (both enrolled, so every
/// connection crosses the proxy twice: outbound from the client, inbound to the server).
struct UpgradeSetup {
    let topology: Topology
    let sluice: SluiceUnderTest
    let app: Topology.Host
    let server: Topology.Host

    var upgradeSocket: String { (sluice.socketPath as NSString).deletingLastPathComponent + "/upgrade.sock" }

    func startLoad(streams: Int) throws -> UpgradeLoad {
        var options = UpgradeLoad.Options()
        options.streams = streams
        options.requestInterval = 0.003
        return try UpgradeLoad(topology: topology, server: server, port: 8080, client: app, options: options)
    }

    struct Outcome {
        var succeeded: Bool
        var output: String
        var pid: Int32
        var migrated: Int
    }

    /// `sluice upgrade --binary`; a new process it reports becomes one of the test's processes.
    func upgrade(to binary: String) throws -> Outcome {
        try finish(try startUpgrade(to: binary))
    }

    /// A running `sluice upgrade`, its output collected until it exits.
    struct PendingUpgrade {
        let child: ChildProcess
        let output: FileHandle
    }

    func startUpgrade(to binary: String) throws -> PendingUpgrade {
        let pipe = try closeOnExecPipe()
        defer { close(pipe.write) }
        let child = try ChildProcess(
            [SluiceUnderTest.binary, "upgrade", "--binary", binary, "--upgrade-socket", upgradeSocket], stdout: pipe.write,
            stderr: pipe.write)
        return PendingUpgrade(child: child, output: FileHandle(fileDescriptor: pipe.read, closeOnDealloc: true))
    }

    func finish(_ pending: PendingUpgrade) throws -> Outcome {
        let output = String(decoding: pending.output.readDataToEndOfFile(), as: UTF8.self)
        let status = pending.child.terminationStatus
        // "upgraded: new proxy pid N, M connection(s) migrated"
        let numbers = output.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let succeeded = status == 0 && output.hasPrefix("upgraded")
        let pid = succeeded ? Int32(numbers.first ?? 0) : 0
        if pid > 0 { topology.adopt(pid: pid) }
        return Outcome(succeeded: succeeded, output: output, pid: pid, migrated: succeeded ? numbers.dropFirst().first ?? 0 : 0)
    }

    /// An executable script in the test's directory standing in for a new binary.
    func wrapper(_ name: String, _ body: String) throws -> String {
        let path = topology.directory.appendingPathComponent("\(name).sh").path
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func executable(of pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    }

    /// How many new processes have connected to the running proxy so far (from its log).
    func connectedCount() -> Int {
        (sluice.proxy?.log.components(separatedBy: "upgrade: new process connected").count ?? 1) - 1
    }
}

func withUpgradeTopology(
    _ label: String, config: String = SluiceUnderTest.bootstrap(), proxyExtra: [String] = [],
    _ body: (UpgradeSetup) throws -> Void
) throws {
    try withTopology(label) { topology in
        let app = try topology.addHost("app")
        let server = try topology.addHost("srv")
        let sluice = try SluiceUnderTest(topology: topology, config: config)
        try sluice.startAgent()
        try sluice.startProxy(extra: proxyExtra)
        try sluice.enroll(app)
        try sluice.enroll(server)
        try sluice.startServer(on: server, port: 8090)
        try body(UpgradeSetup(topology: topology, sluice: sluice, app: app, server: server))
    }
}
