import SluiceModel

/// Turns an entry into one access log line, for any `AccessLogConfig.Format`.
public struct AccessLogFormatter: Hashable, Sendable {
    enum Compiled: Hashable, Sendable {
        case text(FormatString)
        /// Keys in sorted order with their formats; `typed`: numbers stay numbers and missing is null.
        case json([(key: String, format: FormatString)], typed: Bool)

        static func == (lhs: Compiled, rhs: Compiled) -> Bool {
            switch (lhs, rhs) {
            case (.text(let a), .text(let b)): return a == b
            case (.json(let a, let typedA), .json(let b, let typedB)):
                return typedA == typedB && a.map(\.key) == b.map(\.key) && a.map(\.format) == b.map(\.format)
            default: return false
            }
        }

        func hash(into hasher: inout Hasher) {
            switch self {
            case .text(let format): hasher.combine(format)
            case .json(let fields, _): for field in fields { hasher.combine(field.key) }
            }
        }
    }

    let compiled: Compiled

    /// Compiles a configured format; the error names the bad operator (and the JSON key).
    public init(_ format: AccessLogConfig.Format) throws(AccessLogFormatError) {
        switch format {
        case .defaultText: compiled = .text(try FormatString(AccessLogConfig.defaultFormat))
        case .text(let text): compiled = .text(try FormatString(text))
        case .json(let fields), .untypedJSON(let fields):
            var typed = true
            if case .untypedJSON = format { typed = false }
            var compiledFields: [(key: String, format: FormatString)] = []
            for key in fields.keys.sorted() {
                do {
                    compiledFields.append((key, try FormatString(fields[key]!)))
                } catch {
                    var named = error
                    named.format = "json_format.\(key): \(error.format)"
                    throw named
                }
            }
            compiled = .json(compiledFields, typed: typed)
        }
    }

    /// One line. Text formats print as configured (Envoy adds no newline to a custom text format);
    /// JSON prints one object and a newline, numbers as numbers and missing values as null.
    public func line(_ entry: AccessLogEntry) -> String {
        switch compiled {
        case .text(let format): return format.format(entry)
        case .json(let fields, let typed):
            var out = "{"
            for (index, field) in fields.enumerated() {
                if index > 0 { out += "," }
                out += Self.jsonString(field.key) + ":"
                guard typed else {
                    out += Self.jsonString(field.format.format(entry))
                    continue
                }
                switch field.format.typedValue(entry) {
                case .string(let text): out += Self.jsonString(text)
                case .number(let number): out += String(number)
                case .missing: out += "null"
                }
            }
            return out + "}\n"
        }
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
