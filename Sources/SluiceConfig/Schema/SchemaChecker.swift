import SluiceModel
import SwiftProtobuf

/// Walks a JSON document against the Envoy schema, the way Envoy's own parser would reject it
/// (unknown fields, wrong value types, unknown enum names, unknown `@type`s), naming each
/// problem by its field path. What Sluice does not implement is `SupportChecker`'s job, on the
/// decoded message.
public struct SchemaChecker: Sendable {
    public let schema: SchemaIndex

    public init(schema: SchemaIndex = .envoy) {
        self.schema = schema
    }

    /// All issues of `value` read as message `typeName`.
    public func check(_ value: JSONValue, as typeName: String, path: String = "") -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        checkMessage(value, typeName: typeName, path: path, issues: &issues)
        return issues
    }

    func checkMessage(_ value: JSONValue, typeName: String, path: String, issues: inout [ConfigIssue]) {
        if let wellKnown = WellKnownType(rawValue: typeName) {
            checkWellKnown(value, type: wellKnown, path: path, issues: &issues)
            return
        }
        guard let message = schema.message(typeName) else {
            issues.append(ConfigIssue(.invalid, at: path, "type \(typeName) is not part of the Envoy v3 API"))
            return
        }
        guard case .object(let members) = value else {
            issues.append(ConfigIssue(.invalid, at: path, "expected an object (\(typeName)), found \(value.kindName)"))
            return
        }
        var oneofs: [String: String] = [:]
        for (key, member) in members {
            let fieldPath = path.isEmpty ? key : "\(path).\(key)"
            guard let field = message.field(named: key) else {
                issues.append(ConfigIssue(.invalid, at: fieldPath, "unknown field \"\(key)\" in \(typeName)"))
                continue
            }
            let canonicalPath = path.isEmpty ? field.name : "\(path).\(field.name)"
            if case .null = member { continue }
            if let oneof = field.oneofName {
                if let other = oneofs[oneof] {
                    issues.append(ConfigIssue(
                        .invalid, at: canonicalPath,
                        "\"\(field.name)\" and \"\(other)\" are alternatives (oneof \(oneof)); set only one"))
                }
                oneofs[oneof] = field.name
            }
            checkField(member, field: field, path: canonicalPath, issues: &issues)
        }
    }

    private func checkField(_ value: JSONValue, field: SchemaIndex.Field, path: String, issues: inout [ConfigIssue]) {
        if let mapValue = field.mapValue {
            guard case .object(let entries) = value else {
                issues.append(ConfigIssue(.invalid, at: path, "expected an object (map), found \(value.kindName)"))
                return
            }
            for (key, entry) in entries {
                checkSingle(entry, kind: mapValue.kind, typeName: mapValue.typeName, path: "\(path)[\(key)]", issues: &issues)
            }
            return
        }
        if field.isRepeated {
            guard case .array(let items) = value else {
                issues.append(ConfigIssue(.invalid, at: path, "expected a list, found \(value.kindName)"))
                return
            }
            for (index, item) in items.enumerated() {
                checkSingle(item, kind: field.kind, typeName: field.typeName, path: "\(path)[\(index)]", issues: &issues)
            }
            return
        }
        checkSingle(value, kind: field.kind, typeName: field.typeName, path: path, issues: &issues)
    }

    private func checkSingle(
        _ value: JSONValue, kind: Google_Protobuf_FieldDescriptorProto.TypeEnum, typeName: String, path: String,
        issues: inout [ConfigIssue]
    ) {
        switch kind {
        case .message, .group:
            checkMessage(value, typeName: typeName, path: path, issues: &issues)
        case .enum:
            switch value {
            case .string(let name):
                if let values = schema.enumValues(typeName), !values.contains(name) {
                    let known = values.sorted().joined(separator: ", ")
                    issues.append(ConfigIssue(.invalid, at: path, "\"\(name)\" is not a value of \(typeName) (one of: \(known))"))
                }
            case .number(let text) where Int32(text) != nil:
                break
            default:
                issues.append(ConfigIssue(.invalid, at: path, "expected an enum name (\(typeName)), found \(value.kindName)"))
            }
        default:
            if let problem = Self.scalarProblem(value, kind: kind) {
                issues.append(ConfigIssue(.invalid, at: path, problem))
            }
        }
    }

    /// Why `value` is not a valid proto3 JSON scalar of `kind`, or nil.
    static func scalarProblem(_ value: JSONValue, kind: Google_Protobuf_FieldDescriptorProto.TypeEnum) -> String? {
        func integer<T: FixedWidthInteger>(_ type: T.Type, _ label: String) -> String? {
            let text: String
            switch value {
            case .number(let literal): text = literal
            case .string(let literal): text = literal
            default: return "expected \(label), found \(value.kindName)"
            }
            if T(text) != nil { return nil }
            if let double = Double(text), double.rounded() == double, let exact = T(exactly: double) {
                _ = exact
                return nil
            }
            return "\"\(text)\" is not a valid \(label)"
        }
        switch kind {
        case .string:
            if case .string = value { return nil }
            return "expected a string, found \(value.kindName)"
        case .bytes:
            if case .string = value { return nil }
            return "expected base64 bytes, found \(value.kindName)"
        case .bool:
            if case .bool = value { return nil }
            return "expected true or false, found \(value.kindName)"
        case .int32, .sint32, .sfixed32: return integer(Int32.self, "32-bit integer")
        case .uint32, .fixed32: return integer(UInt32.self, "unsigned 32-bit integer")
        case .int64, .sint64, .sfixed64: return integer(Int64.self, "64-bit integer")
        case .uint64, .fixed64: return integer(UInt64.self, "unsigned 64-bit integer")
        case .double, .float:
            switch value {
            case .number: return nil
            case .string(let text) where Double(text) != nil || ["NaN", "Infinity", "-Infinity"].contains(text): return nil
            default: return "expected a number, found \(value.kindName)"
            }
        default:
            return nil
        }
    }
}
