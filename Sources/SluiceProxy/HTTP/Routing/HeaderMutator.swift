import NIOHTTP1
import SluiceModel

/// Applies route-table header mutations to NIO headers as Envoy's `HeaderParser::evaluateHeaders`.
public enum HeaderMutator {
    /// Whether Envoy lets route tables set or remove this header (`:`-pseudo-headers and `host` are not).
    public static func isModifiable(_ name: String) -> Bool {
        !name.hasPrefix(":") && name.asciiLowercased != "host"
    }

    /// Applies each step in order. Within a step: removals first; then every value is computed
    /// (`substitute` is called only for values containing `%`, against the headers as they were
    /// before this step's additions); empty values are skipped unless `keep_empty_value`;
    /// `add_if_absent` and `overwrite_if_exists` look at the headers before this step's additions;
    /// overwrites are applied before appends. Pseudo-headers and `host` are never touched.
    public static func apply(_ steps: [HeaderMutationStep], to headers: inout HTTPHeaders,
                             substitute: ((String) -> String)? = nil) {
        for step in steps {
            apply(add: step.add, remove: step.remove, to: &headers, substitute: substitute)
        }
    }

    /// Applies one level's additions and removals.
    public static func apply(add: [HeaderValueOption], remove: [String], to headers: inout HTTPHeaders,
                             substitute: ((String) -> String)? = nil) {
        for name in remove where isModifiable(name) {
            headers.remove(name: name)
        }
        var overwrites: [(String, String)] = []
        var appends: [(String, String)] = []
        for option in add where isModifiable(option.name) {
            var value = option.value
            if let substitute, value.contains("%") { value = substitute(value) }
            if value.isEmpty && !option.keepEmptyValue { continue }
            switch option.action {
            case .appendIfExistsOrAdd:
                appends.append((option.name, value))
            case .addIfAbsent:
                if !headers.contains(name: option.name) { appends.append((option.name, value)) }
            case .overwriteIfExists:
                if headers.contains(name: option.name) { overwrites.append((option.name, value)) }
            case .overwriteIfExistsOrAdd:
                overwrites.append((option.name, value))
            }
        }
        for (name, value) in overwrites { headers.replaceOrAdd(name: name, value: value) }
        for (name, value) in appends { headers.add(name: name, value: value) }
    }
}
