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
            let (counters, bytes) = try sluice.ebpfCounters(app)
            // The proxy's own upstream connects are never re-captured: one redirect per app connect.
            #expect(counters[.connectRedirected] == 3, "\(counters)")
            #expect(counters[.originalDestinationAnswered] == 3, "SO_ORIGINAL_DST came from the getsockopt hook: \(counters)")
            #expect(counters[.sockhashInserted] == 6, "both ends of each of the 3 connections are in the SOCKHASH: \(counters)")
            #expect(bytes >= 2_000_000, "app ⇄ proxy bytes went through sk_msg: \(bytes) bytes, \(counters)")
            let inventory = try BPFInventory.current(topology)
            #expect(inventory.programNames == BPFInventory.programNames, "\(inventory)")
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
            let counters = try sluice.ebpfCounters(b).events
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
            let inventory = try BPFInventory.current(topology)
            #expect(inventory.programNames == BPFInventory.programNames, "one copy of each program: \(inventory)")
            // connect4, connect6 and sockops on the workload's cgroup, sockops and getsockopt on
            // the proxy's, tcx on eth0 (sk_msg hangs on the SOCKHASH, not on a link).
            #expect(inventory.links.count == 6, "\(inventory)")
            // The seven declared maps, once: the workload's copy reuses the shared copy's maps.
            #expect(inventory.maps.values.sorted() == [
                "sluice_config", "sluice_counters", "sluice_ex_nets", "sluice_ex_ports", "sluice_origin", "sluice_pending", "sluice_socks",
            ], "\(inventory)")
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1)

            try sluice.unenroll(app)
            try eventually("no Sluice program, map or link is left: \(inventory.leftovers)") { try inventory.remaining().isEmpty }
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
            let inventory = try BPFInventory.current(topology)
            #expect(inventory.programNames == BPFInventory.programNames, "\(inventory)")

            try sluice.unenroll(app)
            #expect(!FileManager.default.fileExists(atPath: created), "the agent's cgroup is gone")
            // The shared parent goes too when no other workload (another agent's, say) uses it.
            let parent = "\(Topology.cgroupRoot!)/sluice.workloads"
            let siblings = (try? FileManager.default.contentsOfDirectory(atPath: parent))?.filter { !$0.hasPrefix("cgroup.") && !$0.contains(".") } ?? []
            #expect(!siblings.isEmpty || !FileManager.default.fileExists(atPath: parent), "\(siblings)")
            let back = try String(contentsOfFile: "/proc/\(server.pid)/cgroup", encoding: .utf8)
            #expect(back.contains("/\(topology.prefix)/\(app.namespace)"), "the process is back in its own cgroup: \(back)")
            try eventually("no Sluice program, map or link is left: \(inventory.leftovers)") { try inventory.remaining().isEmpty }
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

            let before = try BPFInventory.current(topology)
            #expect(before.links.count == 6, "\(before)")
            sluice.agent?.stop(signal: SIGKILL)
            try eventually("the kernel dropped every program, map and link with the agent: \(before.leftovers)") {
                try before.remaining().isEmpty
            }

            try sluice.startAgent()
            try eventually("the restarted agent reinstalled capture and re-hooked the proxy") {
                try sluice.cli(["workloads"]).contains("proxy: connected") && BPFInventory.current(topology).links.count == 6
            }
            let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"))
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 2)
            #expect(try sluice.ebpfCounters(app).events[.originalDestinationAnswered] == 1)
            let listing = try sluice.cli(["workloads"])
            #expect(listing.contains("ebpf") && listing.contains("captured"), "\(listing)")

            let reloaded = try BPFInventory.current(topology)
            sluice.agent?.stop(signal: SIGTERM)
            try eventually("a stopping agent leaves nothing loaded: \(reloaded.leftovers)") { try reloaded.remaining().isEmpty }
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
            let inventory = try BPFInventory.current(topology)
            #expect(inventory.programNames == BPFInventory.programNames)
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.ebpfCounters(app).events[.connectRedirected] == 1)

            try sluice.enroll(app)  // back to iptables
            try eventually("ebpf objects removed when switching back: \(inventory.leftovers)") { try inventory.remaining().isEmpty }
            #expect(try sluice.natRules(app).contains("SLUICE_OUTPUT"))
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat(counter) == 3)

            try sluice.unenroll(app)
            #expect(try topology.exec(app.namespace, ["nft", "list", "ruleset"]).isEmpty)
            #expect(try BPFInventory.current(topology).isEmpty)
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
            let inventory = try BPFInventory.current(topology)
            #expect(inventory.programNames == BPFInventory.programNames, "\(inventory)")
            sluice.proxy?.stop(signal: SIGTERM)
            #expect(sluice.proxy?.process.terminationStatus == 0)
            try eventually("nothing loaded: \(inventory.leftovers)") { try inventory.remaining().isEmpty }
            #expect(!FileManager.default.fileExists(atPath: created))
        }
    }

    /// A cgroup hook holds at most 64 programs. Every workload shares one copy of the programs
    /// on the proxy's cgroup, so more workloads than that enroll, and all of it goes with them.
    @Test func moreWorkloadsThanACgroupHookHoldsPrograms() throws {
        try withTopology("ebpf-many") { topology in
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            let count = 70
            var names: [String] = []
            for index in 0..<count {
                let name = try topology.addNamespace("\(topology.prefix)-w\(index)")
                names.append(name)
                let cgroup = try #require(topology.cgroups[name], "no cgroup v2 here")
                _ = try sluice.cli(["enroll", "--netns", name, "--mode", "ebpf", "--cgroup", cgroup])
            }
            let inventory = try BPFInventory.current(topology)
            // connect4, connect6 and sockops on each workload's cgroup (no tcx: only lo), and one
            // sockops and one getsockopt on the proxy's.
            #expect(inventory.links.count == 3 * count + 2, "\(inventory)")
            #expect(inventory.programNames.filter { $0 == "sluice_getsockopt" }.count == 1, "\(inventory)")
            #expect(inventory.programNames.filter { $0 == "sluice_connect4" }.count == count, "\(inventory)")
            for name in names { _ = try sluice.cli(["unenroll", "--netns", name]) }
            try eventually("no Sluice program, map or link is left: \(inventory.leftovers)") { try inventory.remaining().isEmpty }
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
            #expect(try BPFInventory.current(topology).isEmpty)
            let standalone = try Shell.run([SluiceUnderTest.binary, "rules", "install", "--netns", app.namespace, "--mode", "ebpf"])
            #expect(standalone.status != 0 && standalone.stderr.contains("use sluice enroll"), "\(standalone.stderr)")
        }
    }

    /// Not a benchmark (no assertion on timing): one quick figure of HTTP keep-alive requests
    /// per second (wrk → nginx) through the proxy, ebpf vs iptables, on the same topology.
    @Test func requestRateEBPFVersusIPTables() throws {
        guard try Shell.run(["which", "wrk"]).status == 0, try Shell.run(["which", "nginx"]).status == 0 else {
            print("requestRateEBPFVersusIPTables: skipped: needs wrk and nginx (Debian packages wrk, nginx-light)")
            return
        }
        try withTopology("ebpf-rate") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            let work = topology.directory.path
            let conf = "\(work)/nginx.conf"
            try """
                daemon off; worker_processes 1; pid \(work)/nginx.pid; error_log \(work)/nginx-error.log;
                events { worker_connections 1024; }
                http { access_log off; keepalive_requests 1000000;
                  server { listen 8080; location / { default_type text/plain; return 200 "0123456789abcdef"; } } }
                """.write(toFile: conf, atomically: true, encoding: .utf8)
            try topology.spawn("nginx", in: server.namespace, ["nginx", "-c", conf])
            let url = "http://\(server.ipv4):8080/"
            try eventually("nginx answers") { try topology.exec(app.namespace, ["curl", "-sf", url]) == "0123456789abcdef" }
            var rates: [String: [String]] = [:]
            for mode in ["iptables", "ebpf", "iptables", "ebpf"] {
                try sluice.enroll(app, ["--mode", mode])
                let output = try topology.exec(app.namespace, ["wrk", "-t1", "-c4", "-d3s", url])
                let rate = output.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") }
                    .map { $0.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces) }
                #expect(rate != nil, "\(output)")
                rates[mode, default: []].append(rate ?? "?")
            }
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") >= 16, "wrk went through the proxy")
            try sluice.unenroll(app)
            print("""
                requests/s through the proxy (wrk -t1 -c4 -d3s, nginx 16-byte body, 2 rounds each):
                  iptables: \(rates["iptables"]!.joined(separator: ", "))
                  ebpf:     \(rates["ebpf"]!.joined(separator: ", "))
                """)
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

/// Sluice's BPF objects that belong to one topology, as the kernel lists them (bpftool): the
/// programs linked to its cgroups, the programs sharing their maps (the tcx one), their maps and
/// links. Scoped, so tests of other suites or checkouts loading their own copies concurrently
/// do not count.
struct BPFInventory: CustomStringConvertible {
    /// The programs of one enrolled workload: its copy of connect4, connect6 and inbound, and
    /// the shared sockops, getsockopt and sk_msg.
    static let programNames = [
        "sluice_connect4", "sluice_connect6", "sluice_getsockopt", "sluice_inbound", "sluice_sk_msg", "sluice_sockops",
    ]

    /// Program id → name.
    var programs: [Int: String]
    /// Map id → name.
    var maps: [Int: String]
    var links: Set<Int>

    var isEmpty: Bool { programs.isEmpty && maps.isEmpty && links.isEmpty }
    var programNames: [String] { programs.values.sorted() }
    var description: String { "programs \(programNames), maps \(maps.values.sorted()), \(links.count) links" }

    static func current(_ topology: Topology) throws -> BPFInventory {
        var cgroupIDs: Set<Int> = []
        var directories = Array(topology.cgroups.values)
        if let root = Topology.cgroupRoot {
            directories += topology.namespaces.map { "\(root)/sluice.workloads/\($0)" }
        }
        for directory in directories {
            var info = stat()
            if stat(directory, &info) == 0 { cgroupIDs.insert(Int(info.st_ino)) }
        }
        let allLinks = try list(["link", "show"])
        let allPrograms = try list(["prog", "show"])
        let linked = Set(allLinks.filter { cgroupIDs.contains($0["cgroup_id"] as? Int ?? -1) }.compactMap { $0["prog_id"] as? Int })
        let mapIDs = Set(allPrograms.filter { linked.contains($0["id"] as? Int ?? -1) }.flatMap { $0["map_ids"] as? [Int] ?? [] })
        var inventory = BPFInventory(programs: [:], maps: [:], links: [])
        for program in allPrograms {
            guard let id = program["id"] as? Int, let name = program["name"] as? String, name.hasPrefix("sluice_") else { continue }
            if linked.contains(id) || !mapIDs.isDisjoint(with: program["map_ids"] as? [Int] ?? []) { inventory.programs[id] = name }
        }
        // Every map of those programs: the shared copy's own maps (its .rodata) too.
        let allMapIDs = mapIDs.union(allPrograms.filter { inventory.programs[$0["id"] as? Int ?? -1] != nil }
            .flatMap { $0["map_ids"] as? [Int] ?? [] })
        for map in try list(["map", "show"]) {
            if let id = map["id"] as? Int, allMapIDs.contains(id) { inventory.maps[id] = map["name"] as? String ?? "?" }
        }
        inventory.links = Set(allLinks.filter { inventory.programs[$0["prog_id"] as? Int ?? -1] != nil }.compactMap { $0["id"] as? Int })
        return inventory
    }

    /// What of this inventory the kernel still holds, by id (ids are allocated cyclically, so
    /// a freed one does not come back soon): whatever leaked, attached or not.
    func remaining() throws -> BPFInventory {
        let programIDs = Set(try Self.list(["prog", "show"]).compactMap { $0["id"] as? Int })
        let mapIDs = Set(try Self.list(["map", "show"]).compactMap { $0["id"] as? Int })
        let linkIDs = Set(try Self.list(["link", "show"]).compactMap { $0["id"] as? Int })
        return BPFInventory(
            programs: programs.filter { programIDs.contains($0.key) }, maps: maps.filter { mapIDs.contains($0.key) },
            links: links.intersection(linkIDs))
    }

    /// `remaining()` for failure messages.
    var leftovers: String { (try? remaining().description) ?? "(bpftool failed)" }

    private static func list(_ arguments: [String]) throws -> [[String: Any]] {
        let output = try Shell.check(["bpftool", "-j"] + arguments)
        let parsed = try JSONSerialization.jsonObject(with: Data(output.utf8))
        return parsed as? [[String: Any]] ?? []
    }
}

/// The eBPF mode's counters of one workload, as `sluice workloads --json` reports them.
enum EBPFCounter: String {
    case connectRedirected = "cgroup/connect: redirected to the proxy"
    case connectBypassed = "cgroup/connect: excluded, left direct"
    case sockhashInserted = "sockops: sockets put in the SOCKHASH"
    case messagesRedirected = "sk_msg: messages redirected past the TCP stack"
    case originalDestinationAnswered = "cgroup/getsockopt: SO_ORIGINAL_DST answered"
    case inboundAssigned = "tc ingress: connections assigned to the proxy"
    case inboundNoListener = "tc ingress: dropped, proxy not listening"
}

extension SluiceUnderTest {
    /// Event counts (and, for sk_msg, bytes under `bytesRedirected`) of `host`'s programs.
    func ebpfCounters(_ host: Topology.Host) throws -> (events: [EBPFCounter: Int], bytesRedirected: Int) {
        let output = try cli(["workloads", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] ?? [:]
        let all = json["counters"] as? [String: Any] ?? [:]
        var events: [EBPFCounter: Int] = [:]
        var bytes = 0
        for entry in all[host.namespace] as? [[String: Any]] ?? [] {
            guard let rule = entry["rule"] as? String, let counter = EBPFCounter(rawValue: rule) else { continue }
            events[counter] = entry["packets"] as? Int ?? 0
            if counter == .messagesRedirected { bytes = entry["bytes"] as? Int ?? 0 }
        }
        return (events, bytes)
    }
}
