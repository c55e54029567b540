import Foundation

extension ComparisonReport {
    /// The figures as aligned text tables.
    var table: String {
        func format(_ value: Double?, _ digits: Int = 1) -> String { value.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        var lines = [[
            "path", "keep-alive rps", "p50 ms", "p99 ms", "CPU µs/req", "new-conn rps", "p50 ms", "p99 ms", "CPU µs/conn",
            "bulk Gbit/s", "install ms", "remove ms",
        ]]
        for row in rows {
            lines.append([
                row.path, format(row.keepAlive?.requestsPerSecond, 0), format(row.keepAlive?.p50Milliseconds, 2),
                format(row.keepAlive?.p99Milliseconds, 2), format(row.keepAlive?.proxyCPUMicrosecondsPerRequest),
                format(row.newConnections?.requestsPerSecond, 0), format(row.newConnections?.p50Milliseconds, 2),
                format(row.newConnections?.p99Milliseconds, 2), format(row.newConnections?.proxyCPUMicrosecondsPerRequest),
                format(row.bulk?.gigabitsPerSecond, 2), format(row.installMilliseconds), format(row.removeMilliseconds),
            ])
        }
        var text = "kernel \(kernel), \(duration) s per run, \(connections) connections"
            + (envoyVersion.map { ", \(Self.envoyPath): \($0)" } ?? "") + "\n" + Self.align(lines)
        if let envoySkipped { text += "\nenvoy skipped: \(envoySkipped)" }
        for row in rows where row.failure != nil { text += "\n\(row.path): \(row.failure!)" }
        for row in rows {
            for figures in [row.keepAlive, row.newConnections].compactMap({ $0 }) where !figures.errors.isEmpty {
                text += "\n\(row.path): wrk reported \(figures.errors)"
            }
        }
        if let ratios = envoyRatios { text += "\n\n" + ratios }
        let counts = Array(Set(scaling.flatMap { $0.install.keys })).sorted()
        var scale = [["install / remove ms"] + counts.map { "\($0) workloads" }]
        for entry in scaling {
            scale.append([entry.mode] + counts.map { count in
                "\(format(entry.install[count], 0)) / \(format(entry.remove[count], 0))"
            })
        }
        text += "\n\n" + Self.align(scale)
        for entry in scaling where entry.failure != nil { text += "\n\(entry.mode): \(entry.failure!)" }
        return text
    }

    /// Each capture path's figures divided by Envoy's (the same direction as the figures: above
    /// 1 is more requests/s, but also more latency and more CPU).
    private var envoyRatios: String? {
        guard let envoy = envoyRow else { return nil }
        func ratio(_ value: Double?, _ reference: Double?) -> String {
            guard let value, let reference, reference > 0 else { return "-" }
            return String(format: "%.2fx", value / reference)
        }
        var lines = [[
            "ratio to \(Self.envoyPath)", "keep-alive rps", "p50", "p99", "CPU/req", "new-conn rps", "CPU/conn", "bulk",
        ]]
        for row in rows where row.path != "direct" && row.path != Self.envoyPath && row.failure == nil {
            lines.append([
                row.path,
                ratio(row.keepAlive?.requestsPerSecond, envoy.keepAlive?.requestsPerSecond),
                ratio(row.keepAlive?.p50Milliseconds, envoy.keepAlive?.p50Milliseconds),
                ratio(row.keepAlive?.p99Milliseconds, envoy.keepAlive?.p99Milliseconds),
                ratio(row.keepAlive?.proxyCPUMicrosecondsPerRequest, envoy.keepAlive?.proxyCPUMicrosecondsPerRequest),
                ratio(row.newConnections?.requestsPerSecond, envoy.newConnections?.requestsPerSecond),
                ratio(row.newConnections?.proxyCPUMicrosecondsPerRequest, envoy.newConnections?.proxyCPUMicrosecondsPerRequest),
                ratio(row.bulk?.gigabitsPerSecond, envoy.bulk?.gigabitsPerSecond),
            ])
        }
        return lines.count > 1 ? Self.align(lines) : nil
    }

    private static func align(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == 0 ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[index] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// A self-contained SVG: one horizontal bar panel per figure, one bar per path (direct grey,
/// Envoy orange, Sluice's capture modes blue).
struct ComparisonChart {
    let report: ComparisonReport

    private var panels: [(title: String, values: [(String, Double?)])] {
        [
            ("keep-alive requests/s", report.rows.map { ($0.path, $0.keepAlive?.requestsPerSecond) }),
            ("keep-alive p99 ms", report.rows.map { ($0.path, $0.keepAlive?.p99Milliseconds) }),
            ("new connections/s", report.rows.map { ($0.path, $0.newConnections?.requestsPerSecond) }),
            ("bulk Gbit/s", report.rows.map { ($0.path, $0.bulk?.gigabitsPerSecond) }),
            ("proxy CPU µs per request", report.rows.filter { $0.path != "direct" }.map { ($0.path, $0.keepAlive?.proxyCPUMicrosecondsPerRequest) }),
            ("install ms, \(report.scaling.flatMap { $0.install.keys }.max() ?? 0) workloads",
             report.scaling.map { ($0.mode, $0.install[$0.install.keys.max() ?? 0]) }),
        ]
    }

    var svg: String {
        let panelWidth = 420.0, barHeight = 18.0, labelWidth = 110.0, columns = 2
        let rowsPerPanel = Double(max(report.rows.count, report.scaling.count))
        let panelHeight = 40 + rowsPerPanel * (barHeight + 6)
        let panelRows = (panels.count + columns - 1) / columns
        let width = Double(columns) * panelWidth + 20, height = 50 + Double(panelRows) * panelHeight
        var body = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="10" y="24" font-size="15" font-weight="bold">Sluice capture modes and \(escape(report.envoyVersion.map { "Envoy \($0)" } ?? "no Envoy")) — kernel \(escape(report.kernel)), \(report.duration) s runs, \(report.connections) connections</text>

            """
        for (index, panel) in panels.enumerated() {
            let x = 10 + Double(index % columns) * panelWidth, y = 44 + Double(index / columns) * panelHeight
            body += "<text x=\"\(x)\" y=\"\(y + 14)\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
            let largest = panel.values.compactMap(\.1).max() ?? 1
            for (row, (label, value)) in panel.values.enumerated() {
                let top = y + 24 + Double(row) * (barHeight + 6)
                body += "<text x=\"\(x)\" y=\"\(top + 13)\">\(escape(label))</text>\n"
                guard let value else {
                    body += "<text x=\"\(x + labelWidth)\" y=\"\(top + 13)\" fill=\"#999\">not measured</text>\n"
                    continue
                }
                let length = max(1, (panelWidth - labelWidth - 90) * value / max(largest, 1e-9))
                let colour = label == "direct" ? "#888888" : label == ComparisonReport.envoyPath ? "#dd6b20" : "#2b6cb0"
                body += "<rect x=\"\(x + labelWidth)\" y=\"\(top)\" width=\"\(String(format: "%.1f", length))\" height=\"\(barHeight)\" fill=\"\(colour)\"/>\n"
                body += "<text x=\"\(String(format: "%.1f", x + labelWidth + length + 4))\" y=\"\(top + 13)\">\(String(format: value < 10 ? "%.2f" : "%.0f", value))</text>\n"
            }
        }
        return body + "</svg>\n"
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}
