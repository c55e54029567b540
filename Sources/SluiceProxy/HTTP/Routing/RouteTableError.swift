/// A route configuration Envoy would reject, with the path of the offending field.
public struct RouteTableError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Field path such as `virtual_hosts[2].routes[0].match.safe_regex`.
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
