import SluiceModel
import SwiftProtobuf

/// Options that decide how Envoy configuration maps onto Sluice's model.
public struct TranslationOptions: Sendable {
    /// Listeners on this port become per-workload outbound capture listeners.
    public var outboundCapturePort: UInt16
    /// Listeners on this port become per-workload inbound capture listeners.
    public var inboundCapturePort: UInt16

    public init(
        outboundCapturePort: UInt16 = CaptureDefaults.outboundPort,
        inboundCapturePort: UInt16 = CaptureDefaults.inboundPort
    ) {
        self.outboundCapturePort = outboundCapturePort
        self.inboundCapturePort = inboundCapturePort
    }
}

/// Collects the issues found while translating, each with the field path it concerns.
struct TranslationContext {
    let options: TranslationOptions
    private(set) var issues: [ConfigIssue] = []

    init(options: TranslationOptions) {
        self.options = options
    }

    mutating func invalid(_ path: String, _ message: String) {
        issues.append(ConfigIssue(.invalid, at: path, message))
    }

    mutating func unsupported(_ path: String, _ message: String, feature: String? = nil) {
        issues.append(ConfigIssue(.unsupported, at: path, message, feature: feature))
    }

    mutating func warning(_ path: String, _ message: String) {
        issues.append(ConfigIssue(.warning, at: path, message))
    }

    var hasErrors: Bool { hasErrors(since: 0) }

    /// Whether an error was recorded after the first `count` issues.
    func hasErrors(since count: Int) -> Bool {
        issues[count...].contains(where: \.isError)
    }
}

extension Google_Protobuf_Duration {
    /// The duration as a Swift `Duration`.
    var swiftDuration: Duration {
        .seconds(seconds) + .nanoseconds(Int64(nanos))
    }

    var isPositive: Bool { seconds > 0 || (seconds == 0 && nanos > 0) }
}

/// Joins a path and a field name.
func child(_ path: String, _ field: String) -> String {
    path.isEmpty ? field : "\(path).\(field)"
}
