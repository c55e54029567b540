import Foundation
import Testing

/// The eBPF capture mode end to end: real cgroups, real programs in the running kernel, real
/// workloads (namespaces whose processes run in their own cgroup) behind a real proxy.
@Suite(.serialized) struct EBPFCaptureTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create namespaces, cgroups and BPF programs")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
        try #require(Topology.cgroupRoot != nil, "the ebpf mode needs a cgroup v2 hierarchy (none in /proc/mounts)")
        try #require(Shell.run(["which", "bpftool"]).status == 0, "the ebpf tests inspect the kernel with bpftool (Debian package bpftool)")
        let loaded = try BPFInventory.current()
        try #require(loaded.isEmpty, "Sluice BPF programs from another run are loaded: \(loaded)")
    }

    @Test func outboundUsesTheSockmapAndTheGetsockoptHook() throws {
        try withTopology("ebpf-out") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enrollEBPF(app)

            let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"), "the server must see the workload's own address: \(reply)")
            let replyV6 = try sluice.client(from: app, to: "[\(server.ipv6)]:8080", "WHO")
            #expect(replyV6.hasPrefix("peer=[\(app.ipv6)]:"), "IPv6 keeps the workload's address too: \(replyV6)")
            let sink = try sluice.client(from: app, to: "\(server.ipv4):8080", "SINK", ["--bytes", "2000000"])
            let lines = sink.split(separator: "\n").map { $0.split(separator: " ").dropFirst().joined(separator: " ") }
            #expect(lines.count == 2 && lines[0] == lines[1], "2 MB arrive intact through the sockmap path: \(sink)")

            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 3)
            #expect(stats["cluster.passthrough.upstream_cx_total"] == 3)
            let counters = try BPFInventory.counters()
            // The proxy's own upstream connects are never re-captured: one redirect per app connect.
            #expect(counters[.connectRedirected] == 3, "\(counters)")
            #expect(counters[.originalDestinationAnswered] == 3, "SO_ORIGINAL_DST came from the getsockopt hook: \(counters)")
            #expect(counters[.sockhashInserted] == 6, "both ends of each of the 3 connections are in the SOCKHASH: \(counters)")
            #expect((counters[.bytesRedirected] ?? 0) >= 2_000_000, "app ⇄ proxy bytes went through sk_msg: \(counters)")
            let inventory = try BPFInventory.current()
            #expect(inventory.programs.sorted() == BPFInventory.programNames, "\(inventory)")
        }
    }

    @Test func inboundAndEnrolledToEnrolled() throws {
        try withTopology("ebpf-in") { topology in
            let a = try topology.addHost("a")
            let b = try topology.addHost("b")
            let outside = try topology.addHost("out")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: b, port: 9000)
            try sluice.enrollEBPF(b)

            // Outside → B: the tc program hands the SYN to B's inbound listener.
            let inbound = try sluice.client(from: outside, to: "\(b.ipv4):9000", "WHO")
            #expect(inbound.contains("local=\(b.ipv4):9000"), "\(inbound)")
            let inboundV6 = try sluice.client(from: outside, to: "[\(b.ipv6)]:9000", "WHO")
            #expect(inboundV6.contains("local=[\(b.ipv6)]:9000"), "\(inboundV6)")
            #expect(try sluice.stat("sluice.workload.\(b.namespace).inbound_cx_total") == 2)
            let counters = try BPFInventory.counters()
            #expect(counters[.inboundAssigned] == 2, "\(counters)")
            #expect(counters[.originalDestinationAnswered] == 2, "\(counters)")

            // A → B: A's outbound listener, then B's inbound listener.
            try sluice.enrollEBPF(a)
            let both = try sluice.client(from: a, to: "\(b.ipv4):9000", "WHO")
            #expect(both.contains("local=\(b.ipv4):9000"), "\(both)")
            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(a.namespace).outbound_cx_total"] == 1)
            #expect(stats["sluice.workload.\(b.namespace).inbound_cx_total"] == 3)
        }
    }

    @Test func excludedPortsCIDRsLoopbackAndOwnAddressesBypassTheProxy() throws {
        try withTopology("ebpf-excl") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let outside = try topology.addHost("out")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.startServer(on: server, port: 9090)
            try sluice.startServer(on: app, port: 7070)
            try sluice.startServer(on: app, port: 9090)
            try sluice.enrollEBPF(app, ["--exclude-ports", "9090", "--exclude-cidrs", "\(server.ipv4)/32"])
            let workload = "sluice.workload.\(app.namespace).downstream_cx_total"

            _ = try sluice.client(from: app, to: "[\(server.ipv6)]:9090", "WHO")  // excluded port
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")  // excluded CIDR
            _ = try sluice.client(from: app, to: "127.0.0.1:7070", "WHO")
            _ = try sluice.client(from: app, to: "[::1]:7070", "WHO")
            _ = try sluice.client(from: app, to: "\(app.ipv4):7070", "WHO")  // own address: stays on lo
            let direct = try sluice.client(from: outside, to: "\(app.ipv4):9090", "WHO")  // excluded inbound port
            #expect(direct.hasPrefix("peer=\(outside.ipv4):"), "excluded inbound ports reach the app directly: \(direct)")
            #expect(try sluice.stat(workload) == 0)

            _ = try sluice.client(from: app, to: "[\(server.ipv6)]:8080", "WHO")  // the CIDR was IPv4 only
            #expect(try sluice.stat(workload) == 1)
        }
    }

    @Test func installIsIdempotentAndRemovalLeavesNothing() throws {
        try withTopology("ebpf-rm") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            let rulesBefore = try topology.exec(app.namespace, ["nft", "list", "ruleset"])
            try sluice.enrollEBPF(app)
            try sluice.enrollEBPF(app)  // idempotent
            let inventory = try BPFInventory.current()
            #expect(inventory.programs.sorted() == BPFInventory.programNames, "one copy of each program: \(inventory)")
            // connect4, connect6 and sockops on the workload's cgroup, sockops and getsockopt on
            // the proxy's, tcx on eth0 (sk_msg hangs on the SOCKHASH, not on a link).
            #expect(inventory.links == 6, "\(inventory)")
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1)

            try sluice.unenroll(app)
            try eventually("no Sluice program, map or link is left") { try BPFInventory.current().isEmpty }
            #expect(try topology.exec(app.namespace, ["nft", "list", "ruleset"]) == rulesBefore)
            let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"))
            #expect(try sluice.stat("tcp.outbound.downstream_cx_total") == 1, "the direct path is back")
        }
    }

    @Test func theAgentsOwnCgroupAdoptsTheWorkloadAndIsRemoved() throws {
        try withTopology("ebpf-cg") { topology in
            let app = try topology.addHost("app")
            let outside = try topology.addHost("out")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: app, port: 9000)
            let server = try #require(topology.processes.last)
            try sluice.cli(["enroll", "--netns", app.namespace, "--mode", "ebpf"])  // no --cgroup: the agent creates one

            let created = "\(Topology.cgroupRoot!)/sluice.workloads/\(app.namespace)"
            #expect(FileManager.default.fileExists(atPath: created))
            let members = try String(contentsOfFile: created + "/cgroup.procs", encoding: .utf8)
            #expect(members.split(separator: "\n").contains("\(server.pid)"), "the namespace's processes moved in: \(members)")
            let inbound = try sluice.client(from: outside, to: "\(app.ipv4):9000", "WHO")
            #expect(inbound.contains("local=\(app.ipv4):9000"))
            #expect(try sluice.stat("sluice.workload.\(app.namespace).inbound_cx_total") == 1)

            try sluice.unenroll(app)
            #expect(!FileManager.default.fileExists(atPath: created), "the agent's cgroup is gone")
            #expect(!FileManager.default.fileExists(atPath: "\(Topology.cgroupRoot!)/sluice.workloads"))
            let back = try String(contentsOfFile: "/proc/\(server.pid)/cgroup", encoding: .utf8)
            #expect(back.contains("/\(topology.prefix)/\(app.namespace)"), "the process is back in its own cgroup: \(back)")
            try eventually("no Sluice program, map or link is left") { try BPFInventory.current().isEmpty }
        }
    }

    @Test func agentExitDropsEverythingAndARestartReconciles() throws {
        try withTopology("ebpf-restart") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enrollEBPF(app)
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 1)

            sluice.agent?.stop(signal: SIGKILL)
            try eventually("the kernel dropped every program, map and link with the agent") { try BPFInventory.current().isEmpty }

            try sluice.startAgent()
            try eventually("the restarted agent reinstalled capture and re-hooked the proxy") {
                try BPFInventory.current().links == 6
            }
            let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"))
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 2)
            #expect(try BPFInventory.counters()[.originalDestinationAnswered] == 1)
            let listing = try sluice.cli(["workloads"])
            #expect(listing.contains("ebpf") && listing.contains("captured"), "\(listing)")

            sluice.agent?.stop(signal: SIGTERM)
            try eventually("a stopping agent leaves nothing loaded") { try BPFInventory.current().isEmpty }
        }
    }

    @Test func switchingModesLeavesNoLeftovers() throws {
        try withTopology("ebpf-switch") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            let counter = "sluice.workload.\(app.namespace).outbound_cx_total"

            try sluice.enroll(app)  // iptables
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.natRules(app).contains("SLUICE_OUTPUT"))

            try sluice.enrollEBPF(app)
            #expect(try !sluice.natRules(app).contains("SLUICE"), "iptables rules removed when switching to ebpf")
            #expect(try BPFInventory.current().programs.sorted() == BPFInventory.programNames)
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try BPFInventory.counters()[.connectRedirected] == 1)

            try sluice.enroll(app)  // back to iptables
            try eventually("ebpf objects removed when switching back") { try BPFInventory.current().isEmpty }
            #expect(try sluice.natRules(app).contains("SLUICE_OUTPUT"))
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat(counter) == 3)

            try sluice.unenroll(app)
            #expect(try topology.exec(app.namespace, ["nft", "list", "ruleset"]).isEmpty)
            #expect(try BPFInventory.current().isEmpty)
        }
    }

    @Test func upRemovesEverythingOnSIGTERM() throws {
        try withTopology("ebpf-up-exit") { topology in
            let app = try topology.addHost("app")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.cli(["enroll", "--netns", app.namespace, "--mode", "ebpf"])
            let created = "\(Topology.cgroupRoot!)/sluice.workloads/\(app.namespace)"
            #expect(FileManager.default.fileExists(atPath: created))
            sluice.proxy?.stop(signal: SIGTERM)
            #expect(sluice.proxy?.process.terminationStatus == 0)
            try eventually("nothing loaded") { try BPFInventory.current().isEmpty }
            #expect(!FileManager.default.fileExists(atPath: created))
        }
    }

    @Test func badEnrollmentsAreRefusedWithClearErrors() throws {
        try withTopology("ebpf-bad") { topology in
            let app = try topology.addHost("app")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            let wrongMode = try Shell.run([SluiceUnderTest.binary, "enroll", "--netns", app.namespace, "--cgroup", "/x",
                                           "--socket", sluice.socketPath])
            #expect(wrongMode.status != 0 && wrongMode.stderr.contains("--cgroup applies to --mode ebpf only"), "\(wrongMode.stderr)")
            let missing = try Shell.run([SluiceUnderTest.binary, "enroll", "--netns", app.namespace, "--mode", "ebpf",
                                         "--cgroup", "/no-such-sluice-cgroup", "--socket", sluice.socketPath])
            #expect(missing.status != 0 && missing.stderr.contains("no-such-sluice-cgroup"), "\(missing.stderr)")
            // The proxy's own cgroup would capture the proxy's connections: refused.
            let node = try #require(topology.cgroups[sluice.node])
            let loop = try Shell.run([SluiceUnderTest.binary, "enroll", "--netns", app.namespace, "--mode", "ebpf",
                                      "--cgroup", node, "--socket", sluice.socketPath])
            #expect(loop.status != 0 && loop.stderr.contains("runs in the workload's cgroup"), "\(loop.stderr)")
            #expect(try BPFInventory.current().isEmpty)
        }
    }

    /// Not a benchmark (no assertion on timing): one quick figure of request/response rounds per
    /// second through the proxy, ebpf vs iptables, on the same topology.
    @Test func requestResponseRateEBPFVersusIPTables() throws {
        try withTopology("ebpf-rate") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            var rates: [String: String] = [:]
            for mode in ["iptables", "ebpf", "iptables", "ebpf"] {
                if mode == "ebpf" { try sluice.enrollEBPF(app) } else { try sluice.enroll(app) }
                let output = try sluice.client(from: app, to: "\(server.ipv4):8080", "RR", ["--bytes", "64", "--seconds", "3"])
                #expect(output.hasPrefix("rr "), "\(output)")
                rates[mode, default: ""] += output.trimmingCharacters(in: .whitespacesAndNewlines) + "  "
            }
            try sluice.unenroll(app)
            print("request/response through the proxy (64 B, 1 connection, 3 s):\n  iptables: \(rates["iptables"]!)\n  ebpf:     \(rates["ebpf"]!)")
        }
    }
}

extension SluiceUnderTest {
    /// Enrolls `host` in the ebpf mode with the cgroup its processes run in.
    func enrollEBPF(_ host: Topology.Host, _ extra: [String] = []) throws {
        try #require(host.cgroup != nil, "host \(host.namespace) has no cgroup")
        try enroll(host, ["--mode", "ebpf"] + extra)
    }
}

/// Sluice's BPF objects as the kernel lists them (bpftool), and the capture counters.
struct BPFInventory: CustomStringConvertible {
    /// The programs one enrolled workload loads.
    static let programNames = [
        "sluice_connect4", "sluice_connect6", "sluice_getsockopt", "sluice_inbound", "sluice_sk_msg", "sluice_sockops",
    ]

    /// Slots of the `sluice_counters` map (enum counter in bpf/sluice_capture.bpf.c).
    enum Counter: Int {
        case connectRedirected, connectBypassed, sockhashInserted, messagesRedirected, bytesRedirected
        case originalDestinationAnswered, inboundAssigned, inboundNoListener
    }

    var programs: [String]
    var maps: [String]
    /// Links running one of our programs.
    var links: Int

    var isEmpty: Bool { programs.isEmpty && maps.isEmpty && links == 0 }
    var description: String { "programs \(programs), maps \(maps), links \(links)" }

    static func current() throws -> BPFInventory {
        let programs = try list(["prog", "show"]).filter { ($0["name"] as? String)?.hasPrefix("sluice_") == true }
        let ids = Set(programs.compactMap { $0["id"] as? Int })
        let maps = try list(["map", "show"]).compactMap { $0["name"] as? String }.filter { $0.hasPrefix("sluice_") }
        let links = try list(["link", "show"]).filter { ids.contains($0["prog_id"] as? Int ?? -1) }
        return BPFInventory(programs: programs.compactMap { $0["name"] as? String }, maps: maps, links: links.count)
    }

    /// The counters of the one loaded capture object (tests enroll one ebpf workload when
    /// they read them).
    static func counters() throws -> [Counter: Int] {
        var result: [Counter: Int] = [:]
        for entry in try list(["map", "dump", "name", "sluice_counters"]) {
            let pair = entry["formatted"] as? [String: Any] ?? entry
            guard let key = pair["key"] as? Int, let counter = Counter(rawValue: key), let value = pair["value"] as? Int else { continue }
            result[counter, default: 0] += value
        }
        return result
    }

    private static func list(_ arguments: [String]) throws -> [[String: Any]] {
        let output = try Shell.check(["bpftool", "-j"] + arguments)
        let parsed = try JSONSerialization.jsonObject(with: Data(output.utf8))
        return parsed as? [[String: Any]] ?? []
    }
}
