import Foundation
import Testing

/// iptables specifics (both backends, `sluice up` clean-up) and relay behaviour the mode does not
/// change; what every mode must do is in `CaptureMatrixTests`.
@Suite(.serialized) struct CaptureEndToEndTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
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

    @Test func nftablesCountersAreListedAndDriftIsRepaired() throws {
        try withTopology("nft-counters") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app, ["--mode", "nftables", "--exclude-ports", "9090"])
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            let listing = try sluice.cli(["workloads"])
            let redirect = listing.split(separator: "\n").first { $0.contains("output: meta l4proto tcp counter redirect to :15001") }
            #expect(redirect?.trimmingCharacters(in: .whitespaces).hasPrefix("1 packets") == true, "\(listing)")

            // Someone deletes a rule while the agent is away: the restarted agent puts it back.
            sluice.agent?.stop(signal: SIGKILL)
            let handles = try topology.exec(app.namespace, ["nft", "-a", "list", "chain", "inet", "sluice", "output"])
            let handle = try #require(handles.split(separator: "\n").first { $0.contains("redirect to :15001") }?
                .components(separatedBy: "# handle ").last)
            try topology.exec(app.namespace, ["nft", "delete", "rule", "inet", "sluice", "output", "handle", handle])
            try sluice.startAgent()
            try eventually("the rule is back") {
                try topology.exec(app.namespace, ["nft", "list", "chain", "inet", "sluice", "output"]).contains("redirect to :15001")
            }
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
