import Foundation

/// One load run's figures.
struct LoadFigures: Codable {
    var requestsPerSecond: Double
    var p50Milliseconds: Double
    var p99Milliseconds: Double
    /// Proxy CPU per request; nil on the direct path.
    var proxyCPUMicrosecondsPerRequest: Double?
    var errors: String
}

/// Bulk transfer figures.
struct BulkFigures: Codable {
    var gigabitsPerSecond: Double
    var proxyCPUSecondsPerGigabyte: Double?
}

/// Drives `wrk` and `iperf3` from the client namespace and reads the proxy's CPU time around
/// each run.
struct LoadRun {
    let topology: ComparisonTopology
    let duration: Int
    let connections: Int
    /// The proxy's PID, nil for the direct path.
    let proxyPID: Int32?
    static let loadCPU = 0

    /// Short HTTP requests at fixed concurrency; `newConnections` closes each connection after
    /// its request, which measures connection setup.
    func requests(url: String, newConnections: Bool) throws -> LoadFigures {
        let before = proxyCPUSeconds()
        let headers = newConnections ? ["-H", "Connection: close"] : []
        let output = try topology.exec(topology.client, cpu: Self.loadCPU, [
            "wrk", "-t1", "-c\(connections)", "-d\(duration)s", "--latency",
        ] + headers + [url])
        let cpu = proxyCPUSeconds() - before
        guard let rps = Self.number(after: "Requests/sec:", in: output),
              let total = Self.number(before: " requests in", in: output), total > 0,
              let p50 = Self.latency("50%", in: output), let p99 = Self.latency("99%", in: output)
        else { throw CompareError("cannot read wrk's output:\n\(output)") }
        let errors = output.split(separator: "\n").filter { $0.contains("Socket errors") || $0.contains("Non-2xx") }
        return LoadFigures(
            requestsPerSecond: rps, p50Milliseconds: p50, p99Milliseconds: p99,
            proxyCPUMicrosecondsPerRequest: proxyPID.map { _ in cpu / total * 1e6 },
            errors: errors.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; "))
    }

    /// One TCP stream for `duration` seconds.
    func bulk(host: String, port: Int) throws -> BulkFigures {
        let before = proxyCPUSeconds()
        let output = try topology.exec(topology.client, cpu: Self.loadCPU, [
            "iperf3", "-c", host, "-p", "\(port)", "-t", "\(duration)", "-J",
        ])
        let cpu = proxyCPUSeconds() - before
        let json = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        // A failed run is still JSON, with iperf3's reason under "error".
        if let error = json?["error"] as? String { throw CompareError("iperf3 -c \(host) -p \(port): \(error)") }
        guard let end = json?["end"] as? [String: Any], let received = end["sum_received"] as? [String: Any],
              let bits = received["bits_per_second"] as? Double
        else { throw CompareError("cannot read iperf3's output:\n\(output.prefix(2000))") }
        let gbps = bits / 1e9
        return BulkFigures(
            gigabitsPerSecond: gbps,
            proxyCPUSecondsPerGigabyte: proxyPID.map { _ in cpu / (gbps * Double(duration) / 8) })
    }

    private func proxyCPUSeconds() -> Double {
        guard let pid = proxyPID, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.range(of: ") ", options: .backwards)
        else { return 0 }
        let fields = stat[close.upperBound...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func number(after label: String, in text: String) -> Double? {
        guard let range = text.range(of: label) else { return nil }
        return Double(text[range.upperBound...].drop { $0 == " " || $0 == "\t" }.prefix { $0.isNumber || $0 == "." })
    }

    static func number(before label: String, in text: String) -> Double? {
        guard let range = text.range(of: label) else { return nil }
        let digits = text[..<range.lowerBound].reversed().prefix { $0.isNumber }
        return Double(String(digits.reversed()))
    }

    /// wrk's latency distribution line (`50%  312.00us`), in milliseconds.
    static func latency(_ label: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0] == label else { continue }
            let value = parts[1]
            for (unit, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where value.hasSuffix(unit) {
                if let number = Double(value.dropLast(unit.count)) { return number * scale }
            }
        }
        return nil
    }
}

/// A comparison step that failed, with the reason.
struct CompareError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
