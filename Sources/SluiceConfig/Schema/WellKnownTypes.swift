import SluiceModel
import SwiftProtobuf

/// Protobuf's well-known types, which have special JSON forms.
enum WellKnownType: String {
    case any = "google.protobuf.Any"
    case duration = "google.protobuf.Duration"
    case timestamp = "google.protobuf.Timestamp"
    case fieldMask = "google.protobuf.FieldMask"
    case structure = "google.protobuf.Struct"
    case value = "google.protobuf.Value"
    case listValue = "google.protobuf.ListValue"
    case empty = "google.protobuf.Empty"
    case doubleValue = "google.protobuf.DoubleValue"
    case floatValue = "google.protobuf.FloatValue"
    case int64Value = "google.protobuf.Int64Value"
    case uint64Value = "google.protobuf.UInt64Value"
    case int32Value = "google.protobuf.Int32Value"
    case uint32Value = "google.protobuf.UInt32Value"
    case boolValue = "google.protobuf.BoolValue"
    case stringValue = "google.protobuf.StringValue"
    case bytesValue = "google.protobuf.BytesValue"

    /// The scalar a wrapper type holds.
    var wrappedKind: Google_Protobuf_FieldDescriptorProto.TypeEnum? {
        switch self {
        case .doubleValue: return .double
        case .floatValue: return .float
        case .int64Value: return .int64
        case .uint64Value: return .uint64
        case .int32Value: return .int32
        case .uint32Value: return .uint32
        case .boolValue: return .bool
        case .stringValue: return .string
        case .bytesValue: return .bytes
        default: return nil
        }
    }
}

extension SchemaChecker {
    func checkWellKnown(_ value: JSONValue, type: WellKnownType, path: String, issues: inout [ConfigIssue]) {
        if let kind = type.wrappedKind {
            if let problem = Self.scalarProblem(value, kind: kind) { issues.append(ConfigIssue(.invalid, at: path, problem)) }
            return
        }
        switch type {
        case .any:
            checkAny(value, path: path, issues: &issues)
        case .duration:
            guard case .string(let text) = value, Self.parseDuration(text) != nil else {
                issues.append(ConfigIssue(.invalid, at: path, "expected a duration such as \"1.5s\", found \(Self.describe(value))"))
                return
            }
        case .timestamp, .fieldMask:
            if case .string = value { return }
            issues.append(ConfigIssue(.invalid, at: path, "expected a string, found \(value.kindName)"))
        case .structure:
            if case .object = value { return }
            issues.append(ConfigIssue(.invalid, at: path, "expected an object, found \(value.kindName)"))
        case .listValue:
            if case .array = value { return }
            issues.append(ConfigIssue(.invalid, at: path, "expected a list, found \(value.kindName)"))
        case .empty:
            if case .object(let members) = value, members.isEmpty { return }
            issues.append(ConfigIssue(.invalid, at: path, "expected {}"))
        case .value:
            return
        default:
            return
        }
    }

    /// An `Any` names its type; known types are checked recursively. Unknown types in the
    /// namespaces of Envoy and Istio are valid extensions this build lacks (`SupportChecker`
    /// reports them); anything else is not part of the API.
    private func checkAny(_ value: JSONValue, path: String, issues: inout [ConfigIssue]) {
        guard case .object(let members) = value else {
            issues.append(ConfigIssue(.invalid, at: path, "expected an object with \"@type\", found \(value.kindName)"))
            return
        }
        guard case .string(let url)? = value["@type"] else {
            issues.append(ConfigIssue(.invalid, at: path, "missing \"@type\""))
            return
        }
        let typeName = url.split(separator: "/").last.map(String.init) ?? url
        let body = JSONValue.object(members.filter { $0.key != "@type" })
        if let wellKnown = WellKnownType(rawValue: typeName) {
            checkWellKnown(body["value"] ?? .null, type: wellKnown, path: path, issues: &issues)
        } else if schema.message(typeName) != nil {
            checkMessage(body, typeName: typeName, path: path, issues: &issues)
        } else if !SupportPolicy.isIstioExtension(typeName), !SupportPolicy.isEnvoyNamespace(typeName) {
            issues.append(ConfigIssue(.invalid, at: path, "unknown type \(url): not part of the Envoy v3 API"))
        }
    }

    /// Seconds of a proto3 JSON duration (`"1.5s"`, `"-2s"`), or nil when malformed.
    static func parseDuration(_ text: String) -> Double? {
        guard text.hasSuffix("s") else { return nil }
        let number = text.dropLast()
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" }) else { return nil }
        return Double(number)
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return "\"\(text)\""
        case .number(let text): return text
        default: return value.kindName
        }
    }
}
