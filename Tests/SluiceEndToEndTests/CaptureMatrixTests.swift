import Foundation
import Testing

/// A capture mode as the shared matrix drives it.
struct CaptureModeUnderTest: Sendable, CustomTestStringConvertible {
    let name: String

    var testDescription: String { name }
    var enrollArguments: [String] { ["--mode", name] }

    /// Whether the application sees inbound clients' own addresses (else the proxy connects to
    /// it from the workload's own address).
    var preservesClientAddress: Bool { name == "tproxy" }

    /// Whether the mode captures at all (`none` does not: applications address the proxy).
    var captures: Bool { name != "none" }

    static let all = ["iptables", "nftables", "tproxy", "none"].map(CaptureModeUnderTest.init)

    /// The proxy for a matrix test: the default bootstrap plus the explicit per-workload
    /// listener (127.0.0.1:15010 → `upstream`) that `none`-mode applications address.
    static func sluice(_ topology: Topology, upstream: Topology.Host, port: Int = 8080) throws -> SluiceUnderTest {
        try SluiceUnderTest(topology: topology, config: SluiceUnderTest.bootstrap(explicitUpstream: (upstream.ipv4, port)))
    }

    /// Where an application sends a request for `server:port`: the server itself when capture
    /// takes it to the proxy, the explicit listener otherwise.
    func outboundTarget(_ server: Topology.Host, port: Int = 8080) -> String {
        captures ? "\(server.ipv4):\(port)" : "127.0.0.1:15010"
    }

    /// Everything a capture mode may add to a namespace (netfilter rules of both iptables
    /// backends and nftables, policy routing), without counters, so "before enrolling" and
    /// "after unenrolling" can be compared exactly.
    static func footprint(_ topology: Topology, _ host: Topology.Host) throws -> String {
        let legacy = (try? topology.exec(host.namespace, ["iptables-legacy-save"])) ?? ""
        return [
            try topology.exec(host.namespace, ["nft", "-s", "list", "ruleset"]),
            legacy.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix(":") }.joined(separator: "\n"),
            try topology.exec(host.namespace, ["ip", "rule"]),
            try topology.exec(host.namespace, ["ip", "-6", "rule"]),
            // IPv6 link-local addresses (and their routes) appear on their own a moment after
            // a link comes up; they are the kernel's, not a capture mode's.
            try topology.exec(host.namespace, ["ip", "route", "show", "table", "all"])
                .split(separator: "\n").filter { !$0.contains("fe80::") }.joined(separator: "\n"),
        ].joined(separator: "\n---\n")
    }

    /// The lines only one of two footprints has, for failure messages.
    static func difference(_ left: String, _ right: String) -> String {
        let a = left.split(separator: "\n"), b = right.split(separator: "\n")
        return (a.filter { !b.contains($0) }.map { "- \($0)" } + b.filter { !a.contains($0) }.map { "+ \($0)" })
            .joined(separator: "\n")
    }
}

/// The end-to-end behaviour every capture mode must show, one test per behaviour, each run
/// once per mode: real workloads (namespaces), a real proxy, real capture.
@Suite(.serialized) struct CaptureMatrixTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    @Test(arguments: CaptureModeUnderTest.all)
    func outboundGoesThroughTheProxyAndKeepsTheWorkloadsAddress(_ mode: CaptureModeUnderTest) throws {
        try withTopology("out-\(mode.name)") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try CaptureModeUnderTest.sluice(topology, upstream: server)
            try sluice.startUp()
            let serverLog = try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app, mode.enrollArguments)

            let reply = try sluice.client(from: app, to: mode.outboundTarget(server), "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"), "the server must see the workload's own address: \(reply)")
            guard mode.captures else {
                _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
                let stats = try sluice.stats()
                #expect(stats["tcp.explicit.downstream_cx_total"] == 1, "only the request sent to the proxy passes it")
                #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 1)
                return
            }
            let replyV6 = try sluice.client(from: app, to: "[\(server.ipv6)]:8080", "WHO")
            #expect(replyV6.hasPrefix("peer=[\(app.ipv6)]:"), "IPv6 keeps the workload's address too: \(replyV6)")
            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 2)
            #expect(stats["cluster.passthrough.upstream_cx_total"] == 2)
            // The proxy's own upstream connections are never captured again: one connection
            // each reached the server, and nothing arrived at the proxy twice.
            #expect(stats["tcp.outbound.downstream_cx_total"] == 2)
            let served = try String(contentsOf: serverLog, encoding: .utf8).split(separator: "\n").count
            #expect(served == 2, "the server saw \(served) connections")
        }
    }

    @Test(arguments: CaptureModeUnderTest.all)
    func inboundAndEnrolledToEnrolled(_ mode: CaptureModeUnderTest) throws {
        try withTopology("in-\(mode.name)") { topology in
            let a = try topology.addHost("a")
            let b = try topology.addHost("b")
            let outside = try topology.addHost("out")
            let sluice = try CaptureModeUnderTest.sluice(topology, upstream: b, port: 9000)
            try sluice.startUp()
            try sluice.startServer(on: b, port: 9000)
            try sluice.enroll(a, mode.enrollArguments)
            try sluice.enroll(b, mode.enrollArguments)

            func peer(_ client: Topology.Host, v6: Bool = false) -> String {
                let real = mode.preservesClientAddress || !mode.captures
                let address = real ? (v6 ? client.ipv6 : client.ipv4) : (v6 ? b.ipv6 : b.ipv4)
                return v6 ? "peer=[\(address)]:" : "peer=\(address):"
            }
            let inbound = try sluice.client(from: outside, to: "\(b.ipv4):9000", "WHO")
            #expect(inbound.contains("local=\(b.ipv4):9000") && inbound.hasPrefix(peer(outside)), "\(inbound)")
            #expect(try sluice.stat("sluice.workload.\(b.namespace).inbound_cx_total") == (mode.captures ? 1 : 0))
            let inboundV6 = try sluice.client(from: outside, to: "[\(b.ipv6)]:9000", "WHO")
            #expect(inboundV6.contains("local=[\(b.ipv6)]:9000") && inboundV6.hasPrefix(peer(outside, v6: true)), "\(inboundV6)")

            let both = try sluice.client(from: a, to: mode.outboundTarget(b, port: 9000), "WHO")
            #expect(both.contains("local=\(b.ipv4):9000") && both.hasPrefix(peer(a)), "\(both)")
            let stats = try sluice.stats()
            guard mode.captures else {
                #expect(stats["sluice.workload.\(a.namespace).outbound_cx_total"] == 1)
                #expect((stats["sluice.workload.\(b.namespace).inbound_cx_total"] ?? 0) == 0)
                return
            }
            #expect(stats["sluice.workload.\(a.namespace).outbound_cx_total"] == 1)
            #expect(stats["sluice.workload.\(b.namespace).inbound_cx_total"] == 3)
        }
    }

    @Test(arguments: CaptureModeUnderTest.all)
    func excludedPortsCIDRsAndLoopbackBypassTheProxy(_ mode: CaptureModeUnderTest) throws {
        try withTopology("excl-\(mode.name)") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let other = try topology.addHost("other")
            let sluice = try CaptureModeUnderTest.sluice(topology, upstream: other)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.startServer(on: server, port: 9090)
            try sluice.startServer(on: app, port: 7070)
            try sluice.enroll(app, mode.enrollArguments + [
                "--exclude-ports", "9090", "--exclude-cidrs", "\(server.ipv4)/32,\(server.ipv6)/128",
            ])
            try sluice.startServer(on: other, port: 8080)

            _ = try sluice.client(from: app, to: mode.outboundTarget(other), "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1, "a non-excluded destination is captured")
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            _ = try sluice.client(from: app, to: "[\(server.ipv6)]:8080", "WHO")
            _ = try sluice.client(from: app, to: "\(server.ipv4):9090", "WHO")
            _ = try sluice.client(from: app, to: "127.0.0.1:7070", "WHO")
            _ = try sluice.client(from: app, to: "[::1]:7070", "WHO")
            _ = try sluice.client(from: app, to: "\(app.ipv4):7070", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1,
                    "excluded CIDRs (IPv4 and IPv6), excluded ports, loopback and the workload's own address bypass the proxy")
        }
    }

    @Test(arguments: CaptureModeUnderTest.all)
    func installIsIdempotentAndRemovalLeavesNothingBehind(_ mode: CaptureModeUnderTest) throws {
        try withTopology("idem-\(mode.name)") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try CaptureModeUnderTest.sluice(topology, upstream: server)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            let before = try CaptureModeUnderTest.footprint(topology, app)
            try sluice.enroll(app, mode.enrollArguments)
            let installed = try CaptureModeUnderTest.footprint(topology, app)
            #expect((installed != before) == mode.captures, "enrolling installed capture (none installs nothing)")
            #expect(try topology.exec(app.namespace, ["ss", "-Hltn", "sport", "= 15001"]).contains("15001"),
                    "the proxy listens inside the workload")
            try sluice.enroll(app, mode.enrollArguments)
            let twice = try CaptureModeUnderTest.footprint(topology, app)
            #expect(twice == installed, "enrolling twice is enrolling once:\n\(CaptureModeUnderTest.difference(installed, twice))")
            _ = try sluice.client(from: app, to: mode.outboundTarget(server), "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1)

            try sluice.unenroll(app)
            try eventually("the workload's listeners are closed") {
                try topology.exec(app.namespace, ["ss", "-Hltn"]).isEmpty
            }
            let after = try CaptureModeUnderTest.footprint(topology, app)
            #expect(after == before, "removal leaves nothing behind:\n\(CaptureModeUnderTest.difference(before, after))")
            let direct = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(direct.hasPrefix("peer=\(app.ipv4):"))
            let passed = try sluice.stat("tcp.outbound.downstream_cx_total") + sluice.stat("tcp.explicit.downstream_cx_total")
            #expect(passed == 1, "the direct path no longer passes the proxy")
        }
    }

    @Test(arguments: CaptureModeUnderTest.all)
    func agentRestartReconcilesCapture(_ mode: CaptureModeUnderTest) throws {
        try withTopology("restart-\(mode.name)") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try CaptureModeUnderTest.sluice(topology, upstream: server)
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app, mode.enrollArguments)
            let installed = try CaptureModeUnderTest.footprint(topology, app)

            sluice.agent?.stop(signal: SIGKILL)
            try sluice.startAgent()
            try eventually("the proxy reconnects to the restarted agent") {
                let listing = try sluice.cli(["workloads"])
                return listing.contains("proxy: connected") && listing.contains("captured")
            }
            let restarted = try CaptureModeUnderTest.footprint(topology, app)
            #expect(restarted == installed, "the restarted agent keeps the same capture:\n\(CaptureModeUnderTest.difference(installed, restarted))")
            let reply = try sluice.client(from: app, to: mode.outboundTarget(server), "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"))
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 1)
        }
    }

    @Test(arguments: CaptureModeUnderTest.all)
    func switchingModesLeavesNoTraceOfTheOldOne(_ mode: CaptureModeUnderTest) throws {
        let others = CaptureModeUnderTest.all.filter { $0.name != mode.name }
        try withTopology("switch-\(mode.name)") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try CaptureModeUnderTest.sluice(topology, upstream: server)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            let before = try CaptureModeUnderTest.footprint(topology, app)
            for other in others {
                try sluice.enroll(app, other.enrollArguments)
                let otherAlone = try CaptureModeUnderTest.footprint(topology, app)
                try sluice.unenroll(app)

                try sluice.enroll(app, mode.enrollArguments)
                try sluice.enroll(app, other.enrollArguments)
                let switched = try CaptureModeUnderTest.footprint(topology, app)
                let difference = CaptureModeUnderTest.difference(otherAlone, switched)
                #expect(switched == otherAlone, "switching \(mode.name) → \(other.name) leaves exactly \(other.name)'s capture:\n\(difference)")
                #expect(try sluice.cli(["workloads"]).contains(other.name))
                let reply = try sluice.client(from: app, to: other.outboundTarget(server), "WHO")
                #expect(reply.hasPrefix("peer=\(app.ipv4):"))
                try sluice.unenroll(app)
                let after = try CaptureModeUnderTest.footprint(topology, app)
                #expect(after == before, "\(CaptureModeUnderTest.difference(before, after))")
            }
        }
    }
}
