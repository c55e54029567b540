import SluiceConfig
import SluiceProxy

/// One stat as the admin endpoints see it: Envoy's dotted name, the structured name, the value.
typealias StatEntry = (name: StatName, value: StatsStore.Value)

/// Which stats a `/stats` request asked for (`filter`, `usedonly`).
struct StatsSelection {
    var filter: Regex<AnyRegexOutput>?
    /// Envoy's `usedonly` keeps stats that were ever written; Sluice does not track writes, so
    /// a stat counts as used when its value is not zero.
    var usedOnly = false

    /// The selection a request names; an invalid `filter` is reported in the error's text.
    init(request: AdminRequest) throws(StatsSelectionError) {
        if let pattern = request.parameter("filter"), !pattern.isEmpty {
            do {
                filter = try Regex(pattern)
            } catch {
                throw StatsSelectionError(message: "Invalid regex: \(pattern): \(error)")
            }
        }
        usedOnly = request.has("usedonly")
    }

    init(filter: Regex<AnyRegexOutput>? = nil, usedOnly: Bool = false) {
        self.filter = filter
        self.usedOnly = usedOnly
    }

    /// Like Envoy's RE2 filter, the pattern may match anywhere in the dotted name.
    func apply(_ entries: [StatEntry]) -> [StatEntry] {
        entries.filter { entry in
            if usedOnly, entry.value.isZero { return false }
            if let filter, entry.name.description.firstMatch(of: filter) == nil { return false }
            return true
        }
    }
}

/// A `filter` that does not compile.
struct StatsSelectionError: Error {
    var message: String
}

extension StatsStore.Value {
    var isZero: Bool {
        switch self {
        case .counter(let value): return value == 0
        case .gauge(let value): return value == 0
        }
    }

    /// The value as Envoy prints it (counters unsigned, gauges may go negative transiently).
    var text: String {
        switch self {
        case .counter(let value): return String(value)
        case .gauge(let value): return String(value)
        }
    }
}

/// `/stats` in Envoy's text and JSON forms.
enum StatsFormatter {
    /// `name: value` lines sorted by name (counters and gauges together, as Envoy prints them).
    static func text(_ entries: [StatEntry]) -> String {
        var output = ""
        for entry in sorted(entries) {
            output += "\(entry.name.description): \(entry.value.text)\n"
        }
        return output
    }

    /// `{"stats":[{"name":…,"value":…},…]}` with numeric values, as Envoy's `format=json`.
    static func json(_ entries: [StatEntry]) -> String {
        let items = sorted(entries).map { entry in
            JSONValue.object([("name", .string(entry.name.description)), ("value", .number(entry.value.text))])
        }
        return JSONValue.object([("stats", .array(items))]).jsonText
    }

    private static func sorted(_ entries: [StatEntry]) -> [StatEntry] {
        entries.sorted { $0.name.description < $1.name.description }
    }
}

