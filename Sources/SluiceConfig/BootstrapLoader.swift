import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// A bootstrap file read into both forms: Envoy's own message (for `/config_dump`) and
/// Sluice's model (for the proxy), plus any warnings.
public struct LoadedBootstrap: Sendable {
    public var bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap
    /// The static part; xDS adds to it.
    public var configuration: ProxyConfiguration
    /// Set when the bootstrap has `dynamic_resources`.
    public var xds: XDSConfiguration?
    public var warnings: [ConfigIssue]
}

/// Reads an Envoy v3 bootstrap (YAML or JSON) the way `envoy --mode validate` does, then
/// translates it. Everything wrong or unsupported is reported at once, each by its field path.
public enum BootstrapLoader {
    static let bootstrapType = "envoy.config.bootstrap.v3.Bootstrap"

    public static func load(path: String, options: TranslationOptions = TranslationOptions()) throws -> LoadedBootstrap {
        try load(document: try ConfigDocument.load(path: path), options: options)
    }

    public static func load(text: String, options: TranslationOptions = TranslationOptions()) throws -> LoadedBootstrap {
        try load(document: try ConfigDocument.parse(text), options: options)
    }

    public static func load(document: JSONValue, options: TranslationOptions = TranslationOptions()) throws -> LoadedBootstrap {
        let schemaIssues = SchemaChecker().check(document, as: bootstrapType)
        if !schemaIssues.isEmpty { throw ConfigIssues(schemaIssues) }
        let bootstrap = try decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, from: document)
        var context = TranslationContext(options: options)
        let configuration = context.bootstrap(bootstrap)
        let xds = context.xds(bootstrap)
        context.checkRDSSources(bootstrap, hasADS: xds != nil)
        let issues = SupportChecker().check(bootstrap) + context.issues
        if issues.contains(where: \.isError) { throw ConfigIssues(issues.filter(\.isError)) }
        return LoadedBootstrap(bootstrap: bootstrap, configuration: configuration, xds: xds, warnings: issues)
    }

    /// Decodes a schema-checked document into a generated message.
    static func decode<Message: SwiftProtobuf.Message>(_ type: Message.Type, from document: JSONValue) throws -> Message {
        EnvoyMessageRegistry.registerAllForAny()
        do {
            var options = JSONDecodingOptions()
            options.ignoreUnknownFields = false
            return try Message(jsonString: document.jsonText, options: options)
        } catch {
            throw ConfigIssues([ConfigIssue(.invalid, at: "", "cannot decode \(Message.protoMessageName): \(error)")])
        }
    }
}
