import Foundation
import SluiceModel
import Yams

/// Reads a configuration file (Envoy accepts YAML and JSON; JSON is YAML too) into a JSON tree.
public enum ConfigDocument {
    /// Parses `text`; syntax errors name the line and column.
    public static func parse(_ text: String, source: String = "config") throws -> JSONValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigIssues([ConfigIssue(.invalid, at: "", "\(source): cannot parse: \(error)")])
        }
        guard let node else {
            throw ConfigIssues([ConfigIssue(.invalid, at: "", "\(source): the document is empty")])
        }
        return try convert(node, path: "")
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws -> JSONValue {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigIssues([ConfigIssue(.invalid, at: "", "cannot read \(path): \(error.localizedDescription)")])
        }
        return try parse(text, source: path)
    }

    private static func convert(_ node: Node, path: String) throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return scalarValue(scalar, tag: node.tag)
        case .sequence(let sequence):
            return .array(try sequence.enumerated().map { try convert($1, path: "\(path)[\($0)]") })
        case .mapping(let mapping):
            var members: [(key: String, value: JSONValue)] = []
            for (keyNode, valueNode) in mapping {
                guard let key = keyNode.scalar?.string else {
                    throw ConfigIssues([ConfigIssue(.invalid, at: path, "object keys must be plain strings")])
                }
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                if members.contains(where: { $0.key == key }) {
                    throw ConfigIssues([ConfigIssue(.invalid, at: childPath, "the key appears twice")])
                }
                members.append((key, try convert(valueNode, path: childPath)))
            }
            return .object(members)
        case .alias:
            throw ConfigIssues([ConfigIssue(.invalid, at: path, "unresolved YAML alias")])
        }
    }

    private static func scalarValue(_ scalar: Node.Scalar, tag: Tag) -> JSONValue {
        // Quoted scalars are always strings; plain ones follow YAML's core schema.
        if scalar.style != .plain && scalar.style != .any { return .string(scalar.string) }
        let text = scalar.string
        switch Tag.Name(rawValue: tag.rawValue) {
        case .null: return .null
        case .bool: return .bool(["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"].contains(text))
        case .int:
            if let value = Int64(text) { return .number(String(value)) }
            if let value = UInt64(text) { return .number(String(value)) }
            return .string(text)
        case .float:
            // YAML allows forms JSON does not (".5", "1_000.0"): emit the canonical JSON number.
            if let value = Double(text.replacingOccurrences(of: "_", with: "")), value.isFinite {
                return .number(String(describing: value))
            }
            return .string(text)
        default:
            return .string(text)
        }
    }
}
