import Prometheus
import SluiceProxy

/// `/stats/prometheus`: a fresh swift-prometheus registry per scrape, filled from a stats snapshot,
/// so the data path never touches Prometheus types and removed stats simply disappear.
enum PrometheusFormatter {
    /// A stat's Prometheus identity: Envoy's tag-extracted name and its tag as a label.
    struct Series: Hashable {
        var name: String
        var labels: [String: String]
    }

    /// `cluster.backend.upstream_cx_total` → `envoy_cluster_upstream_cx_total{envoy_cluster_name="backend"}`;
    /// Sluice's own scopes (`sluice`, `sluice.workload`) keep their name instead of the `envoy_` prefix.
    static func series(for name: StatName) -> Series {
        let ownScope = name.scope == "sluice" || name.scope.hasPrefix("sluice.")
        let raw = (ownScope ? "" : "envoy_") + name.scope + "_" + name.leaf
        var labels: [String: String] = [:]
        if let tag = name.tag { labels[sanitize(tag.name)] = tag.value }
        return Series(name: sanitize(raw), labels: labels)
    }

    /// Replaces every character outside `[a-zA-Z0-9_:]` with `_` (Envoy does the same).
    static func sanitize(_ name: String) -> String {
        var output = ""
        output.unicodeScalars.reserveCapacity(name.unicodeScalars.count)
        for scalar in name.unicodeScalars {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ":": output.unicodeScalars.append(scalar)
            default: output.unicodeScalars.append("_")
            }
        }
        if let first = output.unicodeScalars.first, ("0"..."9").contains(first) { output = "_" + output }
        return output
    }

    /// The exposition text for `entries`.
    static func render(_ entries: [StatEntry]) -> String {
        let registry = PrometheusCollectorRegistry()
        // The registry traps when one name is registered as two kinds, or both with and without
        // labels; such clashes (only possible through odd stat names) keep the first stat seen.
        var kinds: [String: (isCounter: Bool, labeled: Bool)] = [:]
        var seen: Set<Series> = []
        for entry in entries.sorted(by: { $0.name.description < $1.name.description }) {
            let series = series(for: entry.name)
            let isCounter: Bool
            if case .counter = entry.value { isCounter = true } else { isCounter = false }
            let kind = (isCounter: isCounter, labeled: !series.labels.isEmpty)
            if let existing = kinds[series.name], existing != kind { continue }
            guard seen.insert(series).inserted else { continue }
            kinds[series.name] = kind
            let descriptor = MetricNameDescriptor(metricName: series.name, unitName: "", helpText: "")
            let labels = series.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            switch entry.value {
            case .counter(let value):
                registry.makeCounter(descriptor: descriptor, labels: labels)
                    .increment(by: Int64(clamping: value))
            case .gauge(let value):
                registry.makeGauge(descriptor: descriptor, labels: labels).set(value)
            }
        }
        return registry.emitToString()
    }
}
