/// Envoy's `core.v3.HeaderValueOption`: one header added or set.
public struct HeaderValueOption: Hashable, Sendable {
    /// Envoy's `HeaderAppendAction`.
    public enum AppendAction: Hashable, Sendable {
        case appendIfExistsOrAdd
        case addIfAbsent
        case overwriteIfExistsOrAdd
        case overwriteIfExists
    }

    public var name: String
    /// May contain command operators such as `%DOWNSTREAM_REMOTE_ADDRESS%`, substituted per request.
    public var value: String
    public var action: AppendAction
    public var keepEmptyValue: Bool

    public init(name: String, value: String, action: AppendAction = .appendIfExistsOrAdd, keepEmptyValue: Bool = false) {
        self.name = name.lowercased()
        self.value = value
        self.action = action
        self.keepEmptyValue = keepEmptyValue
    }
}

/// Headers added to and removed from a request or response at one level of the route table.
public struct HeaderMutations: Hashable, Sendable {
    public var requestHeadersToAdd: [HeaderValueOption]
    public var requestHeadersToRemove: [String]
    public var responseHeadersToAdd: [HeaderValueOption]
    public var responseHeadersToRemove: [String]

    public init(
        requestHeadersToAdd: [HeaderValueOption] = [], requestHeadersToRemove: [String] = [],
        responseHeadersToAdd: [HeaderValueOption] = [], responseHeadersToRemove: [String] = []
    ) {
        self.requestHeadersToAdd = requestHeadersToAdd
        self.requestHeadersToRemove = requestHeadersToRemove.map { $0.lowercased() }
        self.responseHeadersToAdd = responseHeadersToAdd
        self.responseHeadersToRemove = responseHeadersToRemove.map { $0.lowercased() }
    }

    public var isEmpty: Bool {
        requestHeadersToAdd.isEmpty && requestHeadersToRemove.isEmpty && responseHeadersToAdd.isEmpty
            && responseHeadersToRemove.isEmpty
    }
}
