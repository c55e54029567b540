import NIOCore
import NIOHTTP1

/// A response the proxy makes itself (no route, upstream failure, filter denial), shaped as
/// Envoy's: `text/plain` body, or for gRPC requests status 200 with `grpc-status` and
/// `grpc-message` derived from the HTTP status.
struct LocalReply: Sendable {
    var status: Int
    var body: String
    /// Envoy's `%RESPONSE_CODE_DETAILS%`, e.g. `route_not_found`.
    var details: String
    /// Envoy's short response flag (`NR`, `UF`, …), empty for none.
    var flag: String
    var headers: HTTPHeaders
    /// Flags a filter set on its reply (fault abort, rate limit).
    var filterFlags: ResponseFlags = []
    /// A filter's own gRPC status for gRPC requests (fault's `grpc_status`).
    var grpcStatusOverride: Int?
    /// Send only the status and headers (no `content-type`/`content-length` of a text body), as
    /// for CORS preflight answers.
    var bareStatus = false

    init(status: Int, body: String, details: String, flag: String = "", headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.body = body
        self.details = details
        self.flag = flag
        self.headers = headers
    }

    /// The gRPC status Envoy sends for an HTTP status (its `httpToGrpcStatus` mapping).
    static func grpcStatus(forHTTPStatus status: Int) -> Int {
        switch status {
        case 400: return 13  // INTERNAL
        case 401: return 16  // UNAUTHENTICATED
        case 403: return 7  // PERMISSION_DENIED
        case 404: return 12  // UNIMPLEMENTED
        case 429, 502, 503, 504: return 14  // UNAVAILABLE
        default: return 2  // UNKNOWN
        }
    }

    /// The response parts to send: head, optional body, trailers. gRPC replies are trailers-only
    /// (the status in the head, which ends the stream), as Envoy sends them; HTTP/1 adds
    /// `content-length: 0`.
    func parts(grpc: Bool, http2: Bool = false, serverName: String?, allocator: ByteBufferAllocator, headRequest: Bool = false)
        -> (head: HTTPResponseHead, body: ByteBuffer?, trailers: HTTPHeaders?)
    {
        var headers = self.headers
        if let serverName { headers.replaceOrAdd(name: "server", value: serverName) }
        headers.replaceOrAdd(name: "date", value: HTTPDate.now())
        if grpc {
            headers.replaceOrAdd(name: "content-type", value: "application/grpc")
            headers.add(name: "grpc-status", value: String(grpcStatusOverride ?? Self.grpcStatus(forHTTPStatus: status)))
            if !body.isEmpty { headers.add(name: "grpc-message", value: Self.percentEncodedGRPCMessage(body)) }
            if !http2 { headers.replaceOrAdd(name: "content-length", value: "0") }
            return (HTTPResponseHead(version: .http1_1, status: .ok, headers: headers), nil, nil)
        }
        if body.isEmpty {
            if !bareStatus || !headers.contains(name: "content-length") { headers.replaceOrAdd(name: "content-length", value: "0") }
            return (HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers), nil, nil)
        }
        if !headers.contains(name: "content-type") { headers.add(name: "content-type", value: "text/plain") }
        headers.replaceOrAdd(name: "content-length", value: String(body.utf8.count))
        let buffer = headRequest ? nil : allocator.buffer(string: body)
        return (HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers), buffer, nil)
    }

    /// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays.
    static func percentEncodedGRPCMessage(_ message: String) -> String {
        var result = ""
        for byte in message.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                result.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The local replies the connection manager and router make, with Envoy's bodies and details.
extension LocalReply {
    static let noRoute = LocalReply(status: 404, body: "", details: "route_not_found", flag: "NR")
    static func clusterNotFound(status: Int) -> LocalReply {
        LocalReply(status: status, body: "", details: "cluster_not_found", flag: "NC")
    }
    static let noHealthyUpstream = LocalReply(
        status: 503, body: "no healthy upstream", details: "no_healthy_upstream", flag: "UH")
    static let upstreamTimeout = LocalReply(
        status: 504, body: "upstream request timeout", details: "upstream_response_timeout", flag: "UT")
    static let streamIdleTimeout = LocalReply(
        status: 504, body: "stream timeout", details: "stream_idle_timeout", flag: "SI")
    static let requestTimeout = LocalReply(
        status: 408, body: "request timeout", details: "request_overall_timeout", flag: "")
    static let overflow = LocalReply(
        status: 503, body: "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        details: "upstream_reset_before_response_started{overflow}", flag: "UO")
    static let headersTooLarge = LocalReply(
        status: 431, body: "Request Header Fields Too Large", details: "request_headers_too_large", flag: "")
    static let payloadTooLarge = LocalReply(
        status: 413, body: "Payload Too Large", details: "request_payload_too_large", flag: "")

    /// Envoy's reply when the upstream failed before sending response headers; after retries
    /// it names the latest reason.
    static func upstreamFailure(_ reason: UpstreamFailure, retried: Bool = false) -> LocalReply {
        let text: String
        let flag: String
        switch reason {
        case .connectFailure:
            text = "remote connection failure"
            flag = "UF"
        case .connectTimeout:
            text = "connection timeout"
            flag = "UF"
        case .reset:
            text = "connection termination"
            flag = "UC"
        case .protocolError:
            text = "protocol error"
            flag = "UPE"
        }
        let lead = retried ? "retried and the latest reset reason" : "reset reason"
        var details = "upstream_reset_before_response_started{\(text.replacingOccurrences(of: " ", with: "_"))"
        if case .connectFailure(let transport) = reason { details += "|\(transport)" }
        return LocalReply(
            status: 503, body: "upstream connect error or disconnect/reset before headers. \(lead): \(text)",
            details: details + "}", flag: flag)
    }
}

/// Why an upstream attempt ended without a complete response.
enum UpstreamFailure: Error, Equatable, Sendable {
    case connectFailure(String)
    case connectTimeout
    /// The connection closed or the stream was reset before the response was complete.
    case reset
    case protocolError

    var isConnectFailure: Bool {
        switch self {
        case .connectFailure, .connectTimeout: return true
        case .reset, .protocolError: return false
        }
    }
}
