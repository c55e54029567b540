import Foundation
import Testing

/// Real workloads (network namespaces) behind a real proxy with real iptables rules.
@Suite(.serialized) struct CaptureEndToEndTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    @Test func outboundGoesThroughTheProxyAndKeepsTheWorkloadsAddress() throws {
        try withTopology("outbound") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app)

            let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"), "the server must see the workload's own address: \(reply)")
            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 1)
            #expect(stats["tcp.outbound.downstream_cx_total"] == 1)
            #expect(stats["cluster.passthrough.upstream_cx_total"] == 1)
            #expect((stats["tcp.outbound.downstream_cx_rx_bytes_total"] ?? 0) > 0)

            let replyV6 = try sluice.client(from: app, to: "[\(server.ipv6)]:8080", "WHO")
            #expect(replyV6.hasPrefix("peer=[\(app.ipv6)]:"), "IPv6 keeps the workload's address too: \(replyV6)")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 2)
        }
    }

    @Test func inboundAndEnrolledToEnrolled() throws {
        try withTopology("inbound") { topology in
            let a = try topology.addHost("a")
            let b = try topology.addHost("b")
            let outside = try topology.addHost("out")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: b, port: 9000)
            try sluice.enroll(a)
            try sluice.enroll(b)

            // Outside → B: captured by B's inbound listener.
            let inbound = try sluice.client(from: outside, to: "\(b.ipv4):9000", "WHO")
            #expect(inbound.contains("local=\(b.ipv4):9000"), "\(inbound)")
            #expect(try sluice.stat("sluice.workload.\(b.namespace).inbound_cx_total") == 1)

            // A → B: A's outbound listener, then B's inbound listener.
            let both = try sluice.client(from: a, to: "\(b.ipv4):9000", "WHO")
            #expect(both.contains("local=\(b.ipv4):9000"), "\(both)")
            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(a.namespace).outbound_cx_total"] == 1)
            #expect(stats["sluice.workload.\(b.namespace).inbound_cx_total"] == 2)
        }
    }

    @Test func excludedPortsAndLoopbackBypassTheProxy() throws {
        try withTopology("exclude") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.startServer(on: server, port: 9090)
            try sluice.startServer(on: app, port: 7070)
            try sluice.enroll(app, ["--exclude-ports", "9090", "--exclude-cidrs", "10.77.0.250/32"])

            _ = try sluice.client(from: app, to: "\(server.ipv4):9090", "WHO")
            _ = try sluice.client(from: app, to: "127.0.0.1:7070", "WHO")
            _ = try sluice.client(from: app, to: "[::1]:7070", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 0)
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1)
        }
    }

    @Test func unenrollRestoresTheDirectPathAndLeavesNoRules() throws {
        try withTopology("unenroll") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            let before = try topology.exec(app.namespace, ["nft", "list", "ruleset"])
            try sluice.enroll(app)
            try sluice.enroll(app)  // idempotent
            let rules = try sluice.natRules(app)
            #expect(rules.components(separatedBy: "-A OUTPUT -j SLUICE_OUTPUT").count == 3, "one jump per family:\n\(rules)")
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).downstream_cx_total") == 1)

            try sluice.unenroll(app)
            #expect(try topology.exec(app.namespace, ["nft", "list", "ruleset"]) == before, "removal leaves nothing behind")
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stats()["sluice.workload.\(app.namespace).downstream_cx_total"] == nil)
            #expect(try sluice.stat("tcp.outbound.downstream_cx_total") == 1)
        }
    }

    @Test func legacyIPTablesBackendWorksToo() throws {
        try withTopology("legacy") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startAgent(extra: ["--iptables-backend", "legacy"])
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app)
            #expect(try topology.exec(app.namespace, ["iptables-legacy-save", "-t", "nat"]).contains("-A OUTPUT -j SLUICE_OUTPUT"))
            #expect(try topology.exec(app.namespace, ["iptables-nft-save", "-t", "nat"]).contains("SLUICE") == false)
            let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"))
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 1)
            try sluice.unenroll(app)
            #expect(try topology.exec(app.namespace, ["iptables-legacy-save", "-t", "nat"]).contains("SLUICE") == false)
        }
    }

    @Test func unreachableUpstreamsTimeOutAndCloseTheClient() throws {
        try withTopology("timeout") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            // The server silently drops SYNs to 8081: the proxy's connect must time out (2 s).
            try topology.exec(server.namespace, ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "DROP"])
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.enroll(app)
            let started = Date()
            let result = try topology.execResult(app.namespace, [
                "python3", SluiceUnderTest.tcpkit, "client", "--connect", "\(server.ipv4):8081", "--command", "WHO", "--timeout", "10",
            ])
            #expect(result.stdout.isEmpty, "nothing can come back from an upstream that never answered")
            #expect(Date().timeIntervalSince(started) < 8)
            try eventually("the timeout is counted") {
                try sluice.stat("cluster.passthrough.upstream_cx_connect_timeout") == 1
            }
            #expect(try sluice.stat("cluster.passthrough.upstream_cx_connect_fail") == 1)
        }
    }

    @Test func upRemovesEveryRuleOnSIGTERM() throws {
        try withTopology("up-exit") { topology in
            let app = try topology.addHost("app")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.enroll(app)
            #expect(try sluice.natRules(app).contains("SLUICE_OUTPUT"))
            sluice.proxy?.stop(signal: SIGTERM)
            #expect(sluice.proxy?.process.terminationStatus == 0)
            #expect(try topology.exec(app.namespace, ["nft", "list", "ruleset"]).isEmpty)
        }
    }
}
