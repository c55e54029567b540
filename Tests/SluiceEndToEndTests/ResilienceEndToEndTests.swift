import Foundation
import Testing

/// Half-close, backpressure, restarts and failures with real processes and real rules.
@Suite(.serialized) struct ResilienceEndToEndTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    @Test func halfClosedConnectionsStillDeliverTheOtherDirection() throws {
        try withTopology("halfclose") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            let log = try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app)

            // The client sends 5 MB and FIN; the server's answer must still arrive.
            let lines = try sluice.client(from: app, to: "\(server.ipv4):8080", "SINK", ["--bytes", "5000000"])
                .split(separator: "\n").map(String.init)
            #expect(lines.count == 2)
            #expect(lines[0].replacingOccurrences(of: "got", with: "expected") == lines[1], "\(lines)")

            // The server sends 3 MB and FIN first; the client's 3 MB after that must still arrive.
            let received = try sluice.client(from: app, to: "\(server.ipv4):8080", "FINFIRST", ["--bytes", "3000000"])
            #expect(received.hasPrefix("received 3000000 "))
            try eventually("server logged the client's bytes after its own FIN") {
                try String(contentsOf: log, encoding: .utf8).contains("\"received\": 3000000")
            }
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 2)
        }
    }

    @Test func slowReadersDoNotGrowProxyMemoryPastItsBound() throws {
        try withTopology("slowreader") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology, config: SluiceUnderTest.bootstrap(bufferLimit: 65536))
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app)
            let proxyPID = try #require(sluice.proxy?.pid)
            let baseline = try residentKilobytes(proxyPID)

            // 20 connections each asking for 40 MB (800 MB in all) and reading slowly for 4 s.
            let clients = try (0..<20).map { index in
                try topology.spawn("slow-\(index)", in: app.namespace, [
                    "python3", SluiceUnderTest.tcpkit, "client", "--connect", "\(server.ipv4):8080", "--command", "SLOWREAD",
                    "--bytes", "40000000", "--read-size", "4096", "--delay", "0.05", "--slow-for", "4",
                ])
            }
            var peak = baseline
            for _ in 0..<30 {
                usleep(100_000)
                peak = max(peak, try residentKilobytes(proxyPID))
            }
            for client in clients { client.process.waitUntilExit() }
            #expect(clients.allSatisfy { $0.log.contains("received 40000000 ok") }, "\(clients.map(\.log))")
            // Bounded: 20 connections × (64 KiB per direction + one read buffer) is a few MiB;
            // without backpressure the proxy would have to hold hundreds of megabytes.
            #expect(peak - baseline < 48 * 1024, "proxy RSS grew from \(baseline) KiB to \(peak) KiB")
            #expect(try sluice.stat("cluster.passthrough.upstream_flow_control_paused_reading_total") > 0)
        }
    }

    @Test func agentRestartKeepsWorkloadsWorking() throws {
        try withTopology("agent-restart") { topology in
            let app = try topology.addHost("app")
            let other = try topology.addHost("other")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app)
            let rules = try sluice.natRules(app)

            sluice.agent?.stop(signal: SIGTERM)
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 1, "capture survives the agent")

            try sluice.startAgent()
            try eventually("the proxy reconnects to the restarted agent") {
                try sluice.cli(["workloads"]).contains("proxy: connected")
            }
            #expect(try sluice.cli(["workloads"]).contains("captured"))
            #expect(try sluice.natRules(app) == rules, "the restarted agent did not change the rules")
            try sluice.enroll(other)
            _ = try sluice.client(from: other, to: "\(server.ipv4):8080", "WHO")
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 2)
            #expect(stats["sluice.workload.\(other.namespace).outbound_cx_total"] == 1)

            // A killed agent (no clean stop) restarts just as well.
            sluice.agent?.stop(signal: SIGKILL)
            try sluice.startAgent()
            try eventually("workloads listed after kill -9") {
                let listing = try sluice.cli(["workloads"])
                return listing.contains("proxy: connected") && listing.components(separatedBy: "captured").count == 3
            }
        }
    }

    @Test func proxyDeathFailsClosedAndTheAgentReplaysOnReturn() throws {
        try withTopology("proxy-death") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app)
            _ = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")

            sluice.proxy?.stop(signal: SIGKILL)
            let refused = try topology.execResult(app.namespace, [
                "python3", SluiceUnderTest.tcpkit, "client", "--connect", "\(server.ipv4):8080", "--command", "WHO", "--timeout", "3",
            ])
            #expect(refused.status != 0, "with the proxy gone, captured traffic is refused, never sent around it")
            #expect(refused.stderr.contains("Connection refused"), "\(refused.stderr)")
            try eventually("the agent reports the missing proxy", timeout: 5) {
                try sluice.cli(["workloads"]).contains("proxy-disconnected")
            }

            try sluice.startProxy(name: "sluice-proxy-2")
            try eventually("traffic flows again once the agent replayed the workload") {
                try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO").hasPrefix("peer=\(app.ipv4)")
            }
        }
    }

    @Test func fiftyWorkloadsShareOneProxy() throws {
        try withTopology("fifty") { topology in
            let server = try topology.addHost("srv")
            let apps = try (0..<50).map { try topology.addHost("w\($0)") }
            let sluice = try SluiceUnderTest(topology: topology)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            for app in apps { try sluice.enroll(app) }
            for app in apps {
                let reply = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
                #expect(reply.hasPrefix("peer=\(app.ipv4):"))
            }
            let stats = try sluice.stats()
            for app in apps {
                #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 1, "\(app.namespace)")
            }
            #expect(stats["sluice.workloads_active"] == 50)
        }
    }

    private func residentKilobytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }
}
