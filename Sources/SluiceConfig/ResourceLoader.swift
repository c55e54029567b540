import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// Checks and translates single Envoy resources (a listener or a cluster as found in a config
/// dump or an xDS response) with the same rules as a bootstrap.
public enum ResourceLoader {
    /// The outcome for one resource: the translated value when it loads, and every issue.
    public struct Outcome<Value: Sendable>: Sendable {
        public var value: Value?
        public var issues: [ConfigIssue]
    }

    public static func listener(
        _ document: JSONValue, path: String = "", options: TranslationOptions = TranslationOptions()
    ) -> Outcome<ListenerConfig> {
        let issues = SchemaChecker().check(document, as: "envoy.config.listener.v3.Listener", path: path)
        if issues.contains(where: { $0.kind == .invalid }) { return Outcome(value: nil, issues: issues) }
        // Unsupported fields are reported; the rest still translates so every issue shows.
        let message: Envoy_Config_Listener_V3_Listener
        do {
            message = try BootstrapLoader.decode(Envoy_Config_Listener_V3_Listener.self, from: stripUnknownTypes(document))
        } catch let error as ConfigIssues {
            return Outcome(value: nil, issues: issues + error.issues)
        } catch {
            return Outcome(value: nil, issues: issues)
        }
        var context = TranslationContext(options: options)
        let listener = context.listener(message, path: path, fallbackName: "listener")
        let all = issues + context.issues
        return Outcome(value: all.contains { $0.kind != .warning } ? nil : listener, issues: all)
    }

    /// Replaces `Any` values whose type is not in the Envoy schema (Istio's own extensions)
    /// with empty `Struct`s so the rest of the resource can still be decoded and examined.
    static func stripUnknownTypes(_ value: JSONValue) -> JSONValue {
        switch value {
        case .array(let items):
            return .array(items.map(stripUnknownTypes))
        case .object(let members):
            if case .string(let url)? = value["@type"] {
                let name = TranslationContext.typeName(url)
                if SchemaIndex.envoy.message(name) == nil, WellKnownType(rawValue: name) == nil {
                    return .object([("@type", .string("type.googleapis.com/google.protobuf.Struct")), ("value", .object([]))])
                }
            }
            return .object(members.map { ($0.key, stripUnknownTypes($0.value)) })
        default:
            return value
        }
    }
}
