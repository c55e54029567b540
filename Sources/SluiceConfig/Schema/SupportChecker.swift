import Foundation
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// Walks a decoded Envoy message (from a file or an xDS response alike) and reports every set
/// field and extension type that Sluice does not implement, by path. The schema index maps
/// wire numbers back to field names.
public struct SupportChecker: Sendable {
    public let schema: SchemaIndex
    public let policy: SupportPolicy

    public init(schema: SchemaIndex = .envoy, policy: SupportPolicy = .current) {
        self.schema = schema
        self.policy = policy
    }

    public func check(_ message: any Message, path: String = "") -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        visit(message, path: path, issues: &issues)
        return issues
    }

    private func visit(_ message: any Message, path: String, issues: inout [ConfigIssue]) {
        let typeName = type(of: message).protoMessageName
        if let any = message as? Google_Protobuf_Any {
            visitAny(any, path: path, issues: &issues)
            return
        }
        if let skipped = skippedOptionalExtension(message, path: path) {
            issues.append(skipped)
            return
        }
        guard WellKnownType(rawValue: typeName) == nil, let schemaMessage = schema.message(typeName) else { return }
        var collector = SetFieldCollector()
        try? message.traverse(visitor: &collector)
        var repeatIndex: [Int: Int] = [:]
        var reported: Set<Int> = []
        for entry in collector.entries {
            guard let field = schemaMessage.field(number: entry.number) else { continue }
            let fieldPath = path.isEmpty ? field.name : "\(path).\(field.name)"
            if !policy.supports(field: field.name, of: typeName) {
                if reported.insert(entry.number).inserted {
                    issues.append(ConfigIssue(
                        .unsupported, at: fieldPath,
                        "\(typeName).\(field.name) is valid Envoy configuration that Sluice does not implement",
                        feature: "\(typeName).\(field.name)"))
                }
                continue
            }
            guard let nested = entry.message else { continue }
            var nestedPath = fieldPath
            if let key = entry.mapKey {
                nestedPath += "[\(key)]"
            } else if field.isRepeated {
                let index = repeatIndex[entry.number, default: 0]
                repeatIndex[entry.number] = index + 1
                nestedPath += "[\(index)]"
            }
            visit(nested, path: nestedPath, issues: &issues)
        }
    }

    private func visitAny(_ any: Google_Protobuf_Any, path: String, issues: inout [ConfigIssue]) {
        let typeName = TranslationContext.typeName(any.typeURL)
        if let treatment = policy.ignoredExtensions[typeName] {
            issues.append(ConfigIssue(.ignored, at: path, "\(typeName): \(treatment)", feature: typeName))
            return
        }
        if SupportPolicy.typedStructTypes.contains(typeName) {
            let innerType = Self.typedStructTypeURL(any).map(TranslationContext.typeName) ?? "(no type_url)"
            if let treatment = policy.ignoredExtensions[innerType] {
                issues.append(ConfigIssue(.ignored, at: path, "\(innerType): \(treatment)", feature: innerType))
            } else {
                issues.append(ConfigIssue(
                    .unsupported, at: path, "TypedStruct carrying \(innerType), which Sluice does not implement",
                    feature: innerType))
            }
            return
        }
        guard let messageType = Google_Protobuf_Any.messageType(forTypeURL: any.typeURL) else {
            if SupportPolicy.isIstioExtension(typeName) {
                issues.append(ConfigIssue(
                    .unsupported, at: path,
                    "\(typeName) is an Istio proxy extension (not part of Envoy's API) that Sluice does not implement",
                    feature: typeName))
            } else {
                issues.append(ConfigIssue(
                    .unsupported, at: path,
                    "\(typeName) is an extension Sluice does not implement (its schema is not compiled in)",
                    feature: typeName))
            }
            return
        }
        guard policy.supports(type: typeName) else {
            issues.append(ConfigIssue(
                .unsupported, at: path, "\(typeName) is a valid Envoy extension that Sluice does not implement",
                feature: typeName))
            return
        }
        guard let unpacked = try? messageType.init(unpackingAny: any) else {
            issues.append(ConfigIssue(.invalid, at: path, "cannot decode \(typeName)"))
            return
        }
        visit(unpacked, path: path, issues: &issues)
    }

    /// Envoy skips an HTTP filter (or a per-route filter config) whose type it does not know
    /// when it is marked `is_optional`; so does Sluice, reporting it as `ignored`.
    private func skippedOptionalExtension(_ message: any Message, path: String) -> ConfigIssue? {
        let any: Google_Protobuf_Any
        let field: String
        if let filter = message as? Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpFilter, filter.isOptional,
           case .typedConfig(let config)? = filter.configType {
            any = config
            field = "typed_config"
        } else if let wrapper = message as? Envoy_Config_Route_V3_FilterConfig, wrapper.isOptional, wrapper.hasConfig {
            any = wrapper.config
            field = "config"
        } else {
            return nil
        }
        let typeName = TranslationContext.typeName(any.typeURL)
        guard !policy.types.contains(typeName), policy.ignoredExtensions[typeName] == nil else { return nil }
        return ConfigIssue(
            .ignored, at: path.isEmpty ? field : "\(path).\(field)",
            "\(typeName) is not implemented; the filter is optional, so it is skipped as Envoy skips it", feature: typeName)
    }

    /// The `type_url` inside a udpa/xds TypedStruct.
    static func typedStructTypeURL(_ any: Google_Protobuf_Any) -> String? {
        if let typed = try? Xds_Type_V3_TypedStruct(unpackingAny: any) { return typed.typeURL }
        if let typed = try? Udpa_Type_V1_TypedStruct(unpackingAny: any) { return typed.typeURL }
        return nil
    }
}

/// Records which fields of one message are set (proto3 traversal skips default values), and
/// the nested messages to descend into.
struct SetFieldCollector: Visitor {
    struct Entry {
        var number: Int
        var message: (any Message)?
        var mapKey: String?
    }

    var entries: [Entry] = []

    private mutating func scalar(_ number: Int) { entries.append(Entry(number: number)) }

    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws { scalar(fieldNumber) }
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws { scalar(fieldNumber) }
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws { scalar(fieldNumber) }
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws { scalar(fieldNumber) }
    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws { scalar(fieldNumber) }
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws { scalar(fieldNumber) }
    mutating func visitSingularEnumField<E: Enum>(value: E, fieldNumber: Int) throws { scalar(fieldNumber) }

    mutating func visitSingularMessageField<M: Message>(value: M, fieldNumber: Int) throws {
        entries.append(Entry(number: fieldNumber, message: value))
    }

    mutating func visitSingularGroupField<G: Message>(value: G, fieldNumber: Int) throws {
        entries.append(Entry(number: fieldNumber, message: value))
    }

    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {
        scalar(fieldNumber)
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {
        scalar(fieldNumber)
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type, value: _ProtobufMessageMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        if value.isEmpty { return }
        for (key, nested) in value.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            entries.append(Entry(number: fieldNumber, message: nested, mapKey: "\(key)"))
        }
    }

    mutating func visitUnknown(bytes: Data) throws {}
}
