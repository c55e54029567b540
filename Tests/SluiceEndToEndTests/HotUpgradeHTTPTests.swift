import Foundation
import Testing

/// Hot upgrades under HTTP load: HTTP/1.1 keep-alive clients (wrk) and HTTP/2 clients (h2load)
/// through the connection manager. HTTP connections drain instead of moving: HTTP/1 responses of
/// the old process say `Connection: close`, HTTP/2 connections get GOAWAY, and clients continue on
/// new connections, which the new process accepts. No request may fail.
@Suite(.serialized) struct HotUpgradeHTTPTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    @Test func httpLoadSurvivesUpgrades() throws {
        try #require(FileManager.default.isExecutableFile(atPath: HotUpgradeEndToEndTests.variantBinary),
                     "the second build is missing: \(HotUpgradeEndToEndTests.variantBinary) (Scripts/test builds it)")
        try withUpgradeTopology("upgrade-http", config: HTTPEndToEndTests.bootstrap, proxyExtra: ["--drain-time-s", "20"]) { setup in
            let topology = setup.topology
            let server = try topology.spawn("http-server", in: setup.server.namespace, [
                "python3", HTTPEndToEndTests.httpkit, "server", "--port", "8081", "--name", "srv",
            ])
            try eventually("http server") { server.log.contains("ready") }
            let url = "http://\(setup.server.ipv4):8081/hello"
            let seconds = 16
            let http1 = try topology.spawn("wrk", in: setup.app.namespace, ["wrk", "-t1", "-c8", "-d\(seconds)s", url])
            let http2 = try topology.spawn("h2load", in: setup.app.namespace, [
                "h2load", "-c", "4", "-m", "4", "-D", "\(seconds)", url,
            ])
            usleep(2_000_000)
            for round in 1...4 {
                let binary = round % 2 == 1 ? HotUpgradeEndToEndTests.variantBinary : SluiceUnderTest.binary
                let outcome = try setup.upgrade(to: binary)
                #expect(outcome.succeeded, "upgrade \(round): \(outcome.output)")
                usleep(2_000_000)
            }
            try eventually("the load finished", timeout: Double(seconds + 30)) { !http1.isRunning && !http2.isRunning }
            let wrk = http1.log
            let h2load = http2.log
            print("wrk through 4 upgrades:\n\(wrk)\nh2load through 4 upgrades:\n\(h2load)")
            #expect(!wrk.contains("Socket errors"), "\(wrk)")
            #expect(!wrk.contains("Non-2xx"), "\(wrk)")
            let requests = wrk.split(separator: "\n").first { $0.contains("requests in") }
            #expect(requests.map { (Int($0.split(separator: " ").first ?? "") ?? 0) > 100 } == true, "\(wrk)")
            #expect(h2load.contains(" 0 failed, 0 errored, 0 timeout"), "\(h2load)")
            #expect(h2load.contains("0 3xx, 0 4xx, 0 5xx"), "\(h2load)")
        }
    }
}
