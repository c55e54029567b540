import Foundation
import SluiceXDSTypes
import SwiftProtobuf

/// The Envoy API schema (from the descriptors the generated types were built from), indexed for
/// walking a JSON document: message fields by proto and JSON name, and enum value names.
public final class SchemaIndex: Sendable {
    /// One field of a message.
    public struct Field: Sendable {
        public var name: String
        public var number: Int
        public var jsonName: String
        public var kind: Google_Protobuf_FieldDescriptorProto.TypeEnum
        /// Full name without the leading dot, for message and enum fields.
        public var typeName: String
        public var isRepeated: Bool
        public var oneofName: String?
        /// For map fields, the value field of the synthetic entry message.
        public var mapValue: MapValue?
    }

    /// How a map field's values are typed.
    public struct MapValue: Sendable {
        public var kind: Google_Protobuf_FieldDescriptorProto.TypeEnum
        public var typeName: String
    }

    /// A message's fields.
    public struct Message: Sendable {
        public var fullName: String
        public var fields: [Field]
        private var byName: [String: Int]
        private var byNumber: [Int: Int]

        init(fullName: String, fields: [Field]) {
            self.fullName = fullName
            self.fields = fields
            var index: [String: Int] = [:]
            var numbers: [Int: Int] = [:]
            for (position, field) in fields.enumerated() {
                index[field.name] = position
                index[field.jsonName] = position
                numbers[field.number] = position
            }
            self.byName = index
            self.byNumber = numbers
        }

        /// The field with wire number `number`.
        public func field(number: Int) -> Field? {
            byNumber[number].map { fields[$0] }
        }

        /// The field a JSON key names (proto name or lowerCamelCase JSON name).
        public func field(named key: String) -> Field? {
            byName[key].map { fields[$0] }
        }
    }

    private let messages: [String: Message]
    private let enums: [String: Set<String>]

    /// The index of the generated Envoy schema, built once.
    public static let envoy = SchemaIndex(EnvoySchemaDescriptors.fileDescriptorSet)

    public init(_ set: Google_Protobuf_FileDescriptorSet) {
        var rawMessages: [String: Google_Protobuf_DescriptorProto] = [:]
        var enums: [String: Set<String>] = [:]
        func collect(_ message: Google_Protobuf_DescriptorProto, scope: String) {
            let fullName = scope.isEmpty ? message.name : "\(scope).\(message.name)"
            rawMessages[fullName] = message
            for nested in message.nestedType { collect(nested, scope: fullName) }
            for enumType in message.enumType {
                enums["\(fullName).\(enumType.name)"] = Set(enumType.value.map(\.name))
            }
        }
        for file in set.file {
            for message in file.messageType { collect(message, scope: file.package) }
            for enumType in file.enumType {
                let name = file.package.isEmpty ? enumType.name : "\(file.package).\(enumType.name)"
                enums[name] = Set(enumType.value.map(\.name))
            }
        }
        var messages: [String: Message] = [:]
        for (fullName, descriptor) in rawMessages {
            let fields = descriptor.field.map { field -> Field in
                let typeName = field.typeName.hasPrefix(".") ? String(field.typeName.dropFirst()) : field.typeName
                var mapValue: MapValue?
                if field.type == .message, let entry = rawMessages[typeName], entry.options.mapEntry,
                   let value = entry.field.first(where: { $0.number == 2 }) {
                    let valueType = value.typeName.hasPrefix(".") ? String(value.typeName.dropFirst()) : value.typeName
                    mapValue = MapValue(kind: value.type, typeName: valueType)
                }
                let oneof: String? =
                    field.hasOneofIndex && !field.proto3Optional ? descriptor.oneofDecl[Int(field.oneofIndex)].name : nil
                return Field(
                    name: field.name,
                    number: Int(field.number),
                    jsonName: field.jsonName.isEmpty ? Self.jsonName(of: field.name) : field.jsonName,
                    kind: field.type,
                    typeName: typeName,
                    isRepeated: field.label == .repeated && mapValue == nil,
                    oneofName: oneof,
                    mapValue: mapValue)
            }
            messages[fullName] = Message(fullName: fullName, fields: fields)
        }
        self.messages = messages
        self.enums = enums
    }

    public func message(_ fullName: String) -> Message? { messages[fullName] }

    /// protoc's default JSON name: underscores dropped, the letter after each one capitalized.
    static func jsonName(of fieldName: String) -> String {
        var result = ""
        var capitalizeNext = false
        for character in fieldName {
            if character == "_" {
                capitalizeNext = true
            } else if capitalizeNext {
                result += character.uppercased()
                capitalizeNext = false
            } else {
                result.append(character)
            }
        }
        return result
    }

    public func enumValues(_ fullName: String) -> Set<String>? { enums[fullName] }
}
