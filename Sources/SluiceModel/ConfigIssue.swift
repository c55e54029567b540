/// One problem found in a configuration, named by the path of the field that causes it.
public struct ConfigIssue: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The value is not valid Envoy configuration.
        case invalid
        /// Valid Envoy configuration that Sluice does not implement.
        case unsupported
        /// Accepted, but probably not what was meant.
        case warning
        /// Accepted; the feature is deliberately skipped (Istio's telemetry-only filters).
        case ignored
    }

    /// Whether the issue rejects the configuration.
    public var isError: Bool { kind == .invalid || kind == .unsupported }

    public var kind: Kind
    /// Field path in proto field names, e.g. `static_resources.clusters[0].lb_policy`.
    public var path: String
    public var message: String
    /// For unsupported configuration: the Envoy feature missing, as `message.field` or a type
    /// name, so reports can group issues by feature.
    public var feature: String?

    public init(_ kind: Kind, at path: String, _ message: String, feature: String? = nil) {
        self.kind = kind
        self.path = path
        self.message = message
        self.feature = feature
    }

    public var description: String {
        let label = kind.rawValue
        return path.isEmpty ? "\(label): \(message)" : "\(path): \(label): \(message)"
    }
}

/// Every issue found in one configuration document.
public struct ConfigIssues: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]

    public init(_ issues: [ConfigIssue]) {
        self.issues = issues
    }

    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
