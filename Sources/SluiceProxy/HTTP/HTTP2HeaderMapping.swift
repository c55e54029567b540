import NIOHPACK
import NIOHTTP1

/// How an HTTP/2 stream's header blocks map to the request heads streams work on, and back.
enum HTTP2HeaderMapping {
    /// The request head as NIO's HTTP/2-to-HTTP/1 codec builds it: `host` from `:authority`
    /// unless present, and the body's framing for methods that may carry one. Nil for a
    /// malformed block (RFC 9113 § 8.2–8.3), which the stream answers with a reset, and without
    /// `:method`, `:path`, `:scheme` or `:authority`. NIO's own validation of header blocks is
    /// off: it would check every block twice over, ours on the way out as well.
    static func requestHead(_ block: HPACKHeaders, endStream: Bool) -> HTTPRequestHead? {
        var method: String?
        var path: String?
        var scheme: String?
        var authority: String?
        var regular: [(String, String)] = []
        regular.reserveCapacity(block.count)
        var hasHost = false
        var hasContentLength = false
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                // Pseudo-headers come first, once each.
                guard regular.isEmpty, isValidPseudoHeaderValue(value) else { return nil }
                switch name {
                case ":method" where method == nil: method = value
                case ":path" where path == nil && !value.isEmpty: path = value
                case ":scheme" where scheme == nil: scheme = value
                case ":authority" where authority == nil: authority = value
                default: return nil
                }
                continue
            }
            guard isValidRegularField(name: name, value: value) else { return nil }
            if name == "host" { hasHost = true }
            if name == "content-length" { hasContentLength = true }
            regular.append((name, value))
        }
        guard let method, let path, scheme != nil, let authority else { return nil }
        var leading: [(String, String)] = []
        if !hasHost { leading.append(("host", authority)) }
        let httpMethod = HTTPMethod(rawValue: method)
        switch httpMethod {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE:
            break
        default:
            if !hasContentLength { leading.append(endStream ? ("content-length", "0") : ("transfer-encoding", "chunked")) }
        }
        return HTTPRequestHead(
            version: HTTPVersion(major: 2, minor: 0), method: httpMethod, uri: path, headers: HTTPHeaders(leading + regular))
    }

    /// A request's trailers; nil when malformed (a pseudo-header, or a field a request block
    /// could not carry either).
    static func requestTrailers(_ block: HPACKHeaders) -> HTTPHeaders? {
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        for (name, value, _) in block {
            guard isValidRegularField(name: name, value: value) else { return nil }
            fields.append((name, value))
        }
        return HTTPHeaders(fields)
    }

    /// A regular field of a request: a lowercase token name that is not connection-specific
    /// (`te` only as `trailers`), and a value without NUL, CR or LF.
    static func isValidRegularField(name: String, value: String) -> Bool {
        guard !name.isEmpty, name.utf8.allSatisfy({ lowercaseTokenByte[Int($0)] }) else { return false }
        switch name {
        case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade": return false
        case "te": if value != "trailers" { return false }
        default: break
        }
        return !value.utf8.contains { $0 == 0x00 || $0 == 0x0A || $0 == 0x0D }
    }

    /// A pseudo-header value has no control bytes, space or DEL: `:path` becomes an HTTP/1
    /// request line, where they would split or smuggle.
    static func isValidPseudoHeaderValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 <= 0x20 || $0 == 0x7F }
    }

    /// `tchar` of RFC 9110 § 5.6.2 without the uppercase letters HTTP/2 forbids in names.
    private static let lowercaseTokenByte: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }

    /// HTTP/2 header block of a response head (`status`) or trailers (nil): lowercase names,
    /// without the connection-specific fields HTTP/2 forbids.
    static func headerBlock(_ headers: HTTPHeaders, status: UInt?) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + 1)
        if let status { block.add(name: ":status", value: String(status)) }
        var named: [String] = []
        for (name, value) in headers {
            let lower = name.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? name.lowercased() : name
            if isConnectionSpecific(lower) {
                if lower == "connection" {
                    named += value.split(separator: ",").map { $0.trimmingASCIISpaces().lowercased() }
                }
                continue
            }
            // Fields whose value changes with nearly every response would only churn HPACK's
            // dynamic table, which NIO's encoder searches entry by entry for every field.
            let volatile = lower == "date" || lower == "x-envoy-upstream-service-time"
            block.add(name: lower, value: value, indexing: volatile ? .nonIndexable : .indexable)
        }
        // Rare: a forwarded response lost its `connection` field with the hop-by-hop ones.
        if !named.isEmpty {
            block = HPACKHeaders(block.filter { !named.contains($0.name) }.map { ($0.name, $0.value) })
        }
        return block
    }

    /// The fields RFC 9113 § 8.2.2 names as connection-specific, by lowercase name.
    private static func isConnectionSpecific(_ lower: String) -> Bool {
        switch lower.utf8.count {
        case 7: lower == "upgrade"
        case 10: lower == "connection" || lower == "keep-alive"
        case 16: lower == "proxy-connection"
        case 17: lower == "transfer-encoding"
        default: false
        }
    }
}
