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
    func checkWellKnown(
        _ value: JSONValue, type: WellKnownType, path: String, enforcePolicy: Bool, issues: inout [ConfigIssue]
    ) {
        if let kind = type.wrappedKind {
            if let problem = Self.scalarProblem(value, kind: kind) { issues.append(ConfigIssue(.invalid, at: path, problem)) }
            return
        }
        switch type {
        case .any:
            checkAny(value, path: path, enforcePolicy: enforcePolicy, issues: &issues)
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

    private func checkAny(_ value: JSONValue, path: String, enforcePolicy: Bool, issues: inout [ConfigIssue]) {
        guard case .object(let members) = value else {
            issues.append(ConfigIssue(.invalid, at: path, "expected an object with \"@type\", found \(value.kindName)"))
            return
        }
        guard case .string(let url)? = value["@type"] else {
            issues.append(ConfigIssue(.invalid, at: path, "missing \"@type\""))
            return
        }
        let typeName = url.split(separator: "/").last.map(String.init) ?? url
        let known = WellKnownType(rawValue: typeName) != nil || schema.message(typeName) != nil
        guard known else {
            if SupportPolicy.isIstioExtension(typeName) {
                issues.append(ConfigIssue(
                    .unsupported, at: path,
                    "\(typeName) is an Istio proxy extension (not part of Envoy's API) that Sluice does not implement",
                    feature: typeName))
            } else if SupportPolicy.isEnvoyNamespace(typeName) {
                issues.append(ConfigIssue(
                    .unsupported, at: path,
                    "\(typeName) is an Envoy extension that Sluice does not implement (its schema is not compiled in)",
                    feature: typeName))
            } else {
                issues.append(ConfigIssue(.invalid, at: path, "unknown type \(url): not part of the Envoy v3 API"))
            }
            return
        }
        if SupportPolicy.typedStructTypes.contains(typeName), case .string(let inner)? = value["type_url"] {
            // Istio wraps its own filter configs in TypedStruct; name what is inside.
            let innerName = inner.split(separator: "/").last.map(String.init) ?? inner
            issues.append(ConfigIssue(
                .unsupported, at: path, "TypedStruct carrying \(innerName), which Sluice does not implement",
                feature: innerName))
            return
        }
        var enforce = enforcePolicy
        if enforcePolicy, !policy.supports(type: typeName) {
            issues.append(ConfigIssue(
                .unsupported, at: path, "\(typeName) is a valid Envoy extension that Sluice does not implement",
                feature: typeName))
            enforce = false
        }
        let body = JSONValue.object(members.filter { $0.key != "@type" })
        if let wellKnown = WellKnownType(rawValue: typeName) {
            checkWellKnown(body["value"] ?? .null, type: wellKnown, path: path, enforcePolicy: enforce, issues: &issues)
        } else {
            checkMessage(body, typeName: typeName, path: path, enforcePolicy: enforce, issues: &issues)
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
