import NIOHTTP1
import SluiceModel

/// What routing, filters and matchers see of one downstream request: its head as Envoy names it
/// (pseudo-headers as fields) and where it came from.
public struct HTTPRequestContext: Sendable {
    public var method: String
    /// Path with query string, as received (`:path`).
    public var path: String
    /// `:authority` (HTTP/2) or `Host` (HTTP/1.1).
    public var authority: String
    /// `http` for plain-text connections.
    public var scheme: String
    /// Regular headers, names as received (lookups are case-insensitive).
    public var headers: HTTPHeaders
    /// `HTTP/1.1` or `HTTP/2`, as access logs print it.
    public var protocolName: String
    /// The downstream connection's peer.
    public var directRemote: SocketEndpoint
    /// The client after `x-forwarded-for` processing (equals `directRemote` unless trusted hops say otherwise).
    public var remote: SocketEndpoint
    /// The address the client addressed (original destination for captured connections).
    public var local: SocketEndpoint

    public init(
        method: String, path: String, authority: String, scheme: String = "http", headers: HTTPHeaders,
        protocolName: String = "HTTP/1.1", directRemote: SocketEndpoint, remote: SocketEndpoint? = nil, local: SocketEndpoint
    ) {
        self.method = method
        self.path = path
        self.authority = authority
        self.scheme = scheme
        self.headers = headers
        self.protocolName = protocolName
        self.directRemote = directRemote
        self.remote = remote ?? directRemote
        self.local = local
    }

    /// The path without its query string.
    public var pathWithoutQuery: Substring {
        path.firstIndex(where: { $0 == "?" || $0 == "#" }).map { path[..<$0] } ?? path[...]
    }

    /// A header's value by Envoy name: pseudo-headers (`:path`, `:authority`, `:method`,
    /// `:scheme`) or a regular header (several values joined with `,` as Envoy does).
    public func value(of name: String) -> String? {
        switch name {
        case ":path": return path
        case ":authority", "host": return authority
        case ":method": return method
        case ":scheme": return scheme
        default:
            let values = headers[name]
            return values.isEmpty ? nil : values.joined(separator: ",")
        }
    }

    /// gRPC requests carry `content-type: application/grpc` (optionally `+proto` etc.).
    public var isGRPC: Bool {
        headers.first(name: "content-type").map { $0.hasPrefix("application/grpc") } ?? false
    }
}
