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
        let schemaIssues = SchemaChecker().check(document, as: "envoy.config.listener.v3.Listener", path: path)
        if !schemaIssues.isEmpty { return Outcome(value: nil, issues: schemaIssues) }
        let message: Envoy_Config_Listener_V3_Listener
        do {
            message = try BootstrapLoader.decode(Envoy_Config_Listener_V3_Listener.self, from: document)
        } catch let error as ConfigIssues {
            return Outcome(value: nil, issues: error.issues)
        } catch {
            return Outcome(value: nil, issues: [ConfigIssue(.invalid, at: path, "\(error)")])
        }
        var context = TranslationContext(options: options)
        let listener = context.listener(message, path: path, fallbackName: "listener")
        let issues = SupportChecker().check(message, path: path) + context.issues
        return Outcome(value: issues.contains(where: \.isError) ? nil : listener, issues: issues)
    }
}
