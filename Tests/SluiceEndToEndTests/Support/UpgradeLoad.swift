import Foundation

/// Continuous load through the proxy for the hot-upgrade tests: `Tools/upgradeload.py` serves in
/// one host and loads it from another, with windows marked around each upgrade.
final class UpgradeLoad: Sendable {
    /// What the client runs; the defaults are the issue's load (50 long-lived streams).
    struct Options: Sendable {
        var keepalive = 4
        var oneshot = 4
        var streams = 50
        /// Bytes per second per stream, in each direction.
        var streamRate = 16384
        var requestSize = 256
        var requestTimeout: TimeInterval = 5
        /// Minimum time between request starts per worker; 0 is back to back. On a 2-CPU
        /// machine back-to-back Python clients can starve the proxy they are measuring.
        var requestInterval: TimeInterval = 0
        /// How long a stream may take at stop to half-close and receive the server's verdict.
        var stopTimeout: TimeInterval = 10

        var arguments: [String] {
            [
                "--keepalive", "\(keepalive)", "--oneshot", "\(oneshot)", "--streams", "\(streams)",
                "--stream-rate", "\(streamRate)", "--request-size", "\(requestSize)",
                "--request-timeout", "\(requestTimeout)", "--request-interval", "\(requestInterval)",
                "--stop-timeout", "\(stopTimeout)",
            ]
        }
    }

    static var script: String {
        URL(fileURLWithPath: SluiceUnderTest.tcpkit).deletingLastPathComponent().appendingPathComponent("upgradeload.py").path
    }

    let options: Options
    let server: BackgroundProcess
    let client: BackgroundProcess
    /// The client's control lines: a file it polls, because BackgroundProcess gives every child
    /// /dev/null as stdin.
    let controlFile: URL
    /// Where the client writes its JSON report; stdout goes to the log mixed with stderr.
    let reportFile: URL

    /// Starts the server on `port` (IPv4 and IPv6) in `serverHost`, then the client in
    /// `clientHost` towards `target` (default: the server's IPv4 address), and waits until every
    /// stream has connected. `name` keeps log and control files apart when a test runs two.
    init(
        topology: Topology, server serverHost: Topology.Host, port: Int, client clientHost: Topology.Host,
        target: String? = nil, options: Options = Options(), name: String = "upgradeload"
    ) throws {
        // Everything is computed in locals first: the stored properties are set once at the end.
        let control = topology.directory.appendingPathComponent("\(name)-control")
        let report = topology.directory.appendingPathComponent("\(name)-report.json")
        // Created before the client starts so that the first append never races its creation.
        guard FileManager.default.createFile(atPath: control.path, contents: nil) else {
            throw ShellError("cannot create \(control.path)")
        }
        let script = UpgradeLoad.script
        let server = try topology.spawn("\(name)-server", in: serverHost.namespace, [
            "python3", script, "server", "--listen", "0.0.0.0:\(port)", "--listen", "[::]:\(port)",
        ])
        try eventually("\(name) server ready in \(serverHost.namespace)") { server.log.contains("ready\n") }
        let client = try topology.spawn("\(name)-client", in: clientHost.namespace, [
            "python3", script, "client", "--connect", target ?? "\(serverHost.ipv4):\(port)",
            "--control", control.path, "--report", report.path,
        ] + options.arguments)
        // "running" comes once every stream has connected or failed to; a failure is in the report.
        try eventually("\(name) client running in \(clientHost.namespace)", timeout: 30 + options.requestTimeout) {
            client.log.contains("running\n")
        }
        self.options = options
        self.server = server
        self.client = client
        controlFile = control
        reportFile = report
    }

    /// Closes the current window and opens `label`; returns once the client has opened it, so
    /// what the test does next is counted in the new window.
    func mark(_ label: String) throws {
        precondition(
            !label.isEmpty && !label.contains("\n") && label == label.trimmingCharacters(in: .whitespaces),
            "a window label is one non-empty line without surrounding blanks")
        // Counted rather than searched for, so a label used twice still waits for its own ack.
        let ack = "mark-ack \(label)\n"
        let before = client.log.components(separatedBy: ack).count
        try send("mark \(label)")
        try eventually("client opened window \(label)") { client.log.components(separatedBy: ack).count > before }
    }

    /// Ends the run: streams half-close and collect the server's verdicts, the client writes its
    /// report and exits. Throws if it does not exit in time, exits non-zero or the report does
    /// not decode; the client's log is in the error.
    func stop() throws -> UpgradeLoadReport {
        try send("stop")
        // The client waits for requests in flight (request timeout) and for the streams (twice
        // the stop timeout: half-close, then verdict), plus margin.
        let limit = (options.requestTimeout + 2 * options.stopTimeout + 15) * testTimeScale
        let deadline = Date().addingTimeInterval(limit)
        while client.isRunning, Date() < deadline { usleep(50_000) }
        guard !client.isRunning else {
            throw ShellError("upgradeload client did not exit within \(Int(limit))s of stop\n\(client.log.suffix(4000))")
        }
        let status = client.process.terminationStatus
        guard status == 0 else {
            throw ShellError("upgradeload client exited \(status)\n\(client.log.suffix(4000))")
        }
        let data: Data
        do {
            data = try Data(contentsOf: reportFile)
        } catch {
            throw ShellError("no upgradeload report at \(reportFile.path): \(error)\n\(client.log.suffix(4000))")
        }
        do {
            return try UpgradeLoadReport.decode(data)
        } catch {
            throw ShellError("upgradeload report does not decode: \(error)\n\(String(decoding: data.prefix(4000), as: UTF8.self))")
        }
    }

    /// Appends one control line; the client polls the file every 20 ms.
    private func send(_ line: String) throws {
        let handle = try FileHandle(forWritingTo: controlFile)
        defer { try? handle.close() }
        _ = try handle.seekToEnd()
        try handle.write(contentsOf: Data((line + "\n").utf8))
    }
}

/// The client's JSON report: counters per window, the fate of every stream, and totals.
struct UpgradeLoadReport: Decodable, Sendable {
    /// Latency of the successful requests, in milliseconds; nil when there were none.
    struct Latency: Decodable, Sendable {
        let count: Int
        let p50: Double?
        let p99: Double?
        let max: Double?
    }

    /// Events observed between two marks (a request counts when it completes or fails).
    struct Window: Decodable, Sendable {
        let label: String
        /// Unix time.
        let start: Double
        let end: Double?
        let requestsOk: Int
        let rrOk: Int
        let oneOk: Int
        let connectRefused: Int
        let resets: Int
        let timeouts: Int
        let truncated: Int
        let wrongContent: Int
        let failed: Int
        let otherErrors: Int
        let streamCorruptions: Int
        let streamsLost: Int
        let streamStalls: Int
        let latencyMs: Latency
        /// A few distinct error messages seen in this window.
        let messages: [String]

        /// Every failure counter by its report name, zero or not, in a fixed order.
        var failureCounts: [(name: String, count: Int)] {
            [
                ("connect_refused", connectRefused), ("resets", resets), ("timeouts", timeouts),
                ("truncated", truncated), ("wrong_content", wrongContent), ("failed", failed),
                ("other_errors", otherErrors), ("stream_corruptions", streamCorruptions),
                ("streams_lost", streamsLost), ("stream_stalls", streamStalls),
            ]
        }
    }

    /// Something wrong with one direction of a stream: `corrupt` bytes from `offset` on, or
    /// `missing` bytes after `offset` (of `expected`) found at the end.
    struct StreamProblem: Decodable, Sendable {
        /// "c2s" (client to server, judged by the server) or "s2c".
        let direction: String
        let offset: Int?
        let kind: String
        let expected: Int?
    }

    /// What the server received on a stream, sent back on its last line.
    struct ServerVerdict: Decodable, Sendable {
        let received: Int
        let sent: Int
        let verdict: String
        let corruptOffset: Int?
        let corruptTime: Double?
    }

    /// One long-lived stream over the whole run.
    struct StreamReport: Decodable, Sendable {
        let id: Int
        let bytesSent: Int
        let bytesReceived: Int
        let bytesVerified: Int
        /// Connected, never broke, and ended with the server's verdict.
        let survived: Bool
        let ok: Bool
        let lostReason: String?
        let problems: [StreamProblem]
        let serverVerdict: ServerVerdict?
        let errors: [String]
    }

    /// Sums over the windows, plus stream outcomes; `failures` counts everything that went wrong.
    struct Totals: Decodable, Sendable {
        let requestsOk: Int
        let rrOk: Int
        let oneOk: Int
        let connectRefused: Int
        let resets: Int
        let timeouts: Int
        let truncated: Int
        let wrongContent: Int
        let failed: Int
        let otherErrors: Int
        let streamCorruptions: Int
        let streamsLost: Int
        let streamStalls: Int
        let latencyMs: Latency
        let streams: Int
        let streamsSurvived: Int
        let streamsOk: Int
        let streamProblems: Int
        let streamBytesSent: Int
        let streamBytesReceived: Int
        let failures: Int
    }

    let version: Int
    let started: Double
    let ended: Double
    let windows: [Window]
    let streams: [StreamReport]
    let totals: Totals
    let otherErrorMessages: [String]

    /// The report's keys are snake_case; the properties above are their camelCase forms.
    static func decode(_ data: Data) throws -> UpgradeLoadReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(UpgradeLoadReport.self, from: data)
    }

    func window(_ label: String) -> Window? {
        windows.first { $0.label == label }
    }

    /// How much `label`'s p99 latency exceeds `baseline`'s, in milliseconds (nil if either
    /// window had no successful request).
    func p99Step(_ label: String, over baseline: String) -> Double? {
        guard let p99 = window(label)?.latencyMs.p99, let base = window(baseline)?.latencyMs.p99 else { return nil }
        return p99 - base
    }

    /// Every nonzero failure count with its window, then every stream that did not come through
    /// intact, then unexpected errors: one readable line each, empty when the run was clean.
    var failures: [String] {
        var lines: [String] = []
        for window in windows {
            let nonzero = window.failureCounts.filter { $0.count > 0 }
            for (name, count) in nonzero {
                lines.append("window \(window.label): \(name) = \(count)")
            }
            if !nonzero.isEmpty, !window.messages.isEmpty {
                lines.append("window \(window.label): messages: \(window.messages.joined(separator: "; "))")
            }
        }
        for stream in streams where !stream.ok {
            if let reason = stream.lostReason {
                lines.append("stream \(stream.id): lost (\(reason))")
            } else if !stream.survived {
                lines.append("stream \(stream.id): did not survive")
            }
            for problem in stream.problems {
                let offset = problem.offset.map(String.init) ?? "?"
                let expected = problem.expected.map { " of \($0)" } ?? ""
                let what = problem.kind == "missing" ? "bytes missing after offset \(offset)\(expected)" : "\(problem.kind) at offset \(offset)"
                lines.append("stream \(stream.id): \(problem.direction) \(what)")
            }
            for error in stream.errors {
                lines.append("stream \(stream.id): \(error)")
            }
        }
        for message in otherErrorMessages {
            lines.append("other error: \(message)")
        }
        return lines
    }
}
