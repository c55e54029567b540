import Foundation
import NIOHTTP1

/// A parsed admin request: what the router needs, nothing of the connection.
struct AdminRequest: Sendable {
    var method: HTTPMethod
    var path: String
    /// Query parameters in order; a key without `=` has an empty value (`?usedonly`).
    var query: [(name: String, value: String)]
    /// Whether the peer may change server state (loopback TCP, or root/our uid on the Unix socket).
    var peerIsPrivileged: Bool

    init(method: HTTPMethod, uri: String, peerIsPrivileged: Bool) {
        self.method = method
        self.peerIsPrivileged = peerIsPrivileged
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = parts.first.map { Self.decode($0) } ?? "/"
        if path.isEmpty { path = "/" }
        query = parts.count > 1 ? Self.parseQuery(parts[1]) : []
    }

    /// The first value given for `name`, if the parameter is present at all.
    func parameter(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    func has(_ name: String) -> Bool { parameter(name) != nil }

    static func parseQuery(_ text: Substring) -> [(name: String, value: String)] {
        text.split(separator: "&").map { pair in
            let halves = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(halves[0]), halves.count > 1 ? decode(halves[1]) : "")
        }
    }

    /// Form decoding: `+` is a space, then percent escapes; malformed escapes are kept verbatim.
    static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}

/// A complete admin response; bodies are small enough to build in memory.
struct AdminResponse: Sendable {
    static let text = "text/plain; charset=UTF-8"
    static let json = "application/json"
    /// The Prometheus text exposition format, version 0.0.4.
    static let prometheus = "text/plain; version=0.0.4; charset=utf-8"

    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    /// Runs once the response has been written (`/quitquitquit` shuts down only after replying).
    var afterSend: (@Sendable () -> Void)?

    init(status: HTTPResponseStatus, contentType: String, body: String, afterSend: (@Sendable () -> Void)? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
        self.afterSend = afterSend
    }

    /// A plain-text response with a status other than 200 (errors).
    init(_ status: HTTPResponseStatus, _ body: String) {
        self.init(status: status, contentType: Self.text, body: body)
    }

    /// A 200 plain-text response.
    init(_ body: String, afterSend: (@Sendable () -> Void)? = nil) {
        self.init(status: .ok, contentType: Self.text, body: body, afterSend: afterSend)
    }

    /// A 200 response of another content type.
    init(contentType: String, _ body: String) {
        self.init(status: .ok, contentType: contentType, body: body)
    }
}
