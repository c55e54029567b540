import NIOHTTP1
import SluiceModel

/// The connection manager's request header processing before routing, as Envoy's: hop-by-hop
/// headers, `x-forwarded-for`/`-proto`, `x-envoy-internal`, `x-envoy-external-address`,
/// `x-request-id`, and the removal of Envoy's control headers from external requests.
struct ForwardedHeaders {
    /// Envoy's control headers, only honoured from internal clients.
    static let internalControlHeaders: [String] = [
        "x-envoy-decorator-operation", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node",
        "x-envoy-expected-rq-timeout-ms", "x-envoy-external-address", "x-envoy-force-trace",
        "x-envoy-hedge-on-per-try-timeout", "x-envoy-internal", "x-envoy-ip-tags", "x-envoy-max-retries",
        "x-envoy-retry-grpc-on", "x-envoy-retry-on", "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names",
        "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-per-try-timeout-ms",
        "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-stream-duration-ms",
    ]

    /// Removes hop-by-hop headers and those the `Connection` header names. `te` survives only
    /// as `trailers`. One pass finds what is there; the usual message carries at most
    /// `connection: keep-alive`, which costs one removal.
    static func removeHopByHop(_ headers: inout HTTPHeaders, keepUpgrade: Bool = false) {
        var present = HopByHop()
        var te = false
        var teTrailers = false
        var named: [String] = []
        for (name, value) in headers {
            guard let kind = HopByHop.kind(of: name) else { continue }
            present.insert(kind)
            switch kind {
            case .connection:
                // What nearly every HTTP/1 peer sends, without splitting it into tokens.
                if value.equalsASCIICaseInsensitive("keep-alive") || value.equalsASCIICaseInsensitive("close") { continue }
                for token in value.split(separator: ",") {
                    let token = token.trimmingASCIISpaces()
                    if token.isEmpty || token.equalsASCIICaseInsensitive("close") || token.equalsASCIICaseInsensitive("keep-alive") {
                        continue
                    }
                    if keepUpgrade, token.equalsASCIICaseInsensitive("upgrade") { continue }
                    named.append(token)
                }
            case .te:
                te = true
                if value.containsASCIICaseInsensitive("trailers") { teTrailers = true }
            default:
                break
            }
        }
        guard !present.isEmpty else { return }
        for name in named {
            headers.remove(name: name)
            // `Connection: te` removes `te` altogether.
            if name.equalsASCIICaseInsensitive("te") { te = false }
        }
        if present.contains(.connection), !keepUpgrade { headers.remove(name: "connection") }
        if present.contains(.keepAlive) { headers.remove(name: "keep-alive") }
        if present.contains(.proxyConnection) { headers.remove(name: "proxy-connection") }
        if present.contains(.transferEncoding) { headers.remove(name: "transfer-encoding") }
        if present.contains(.upgrade), !keepUpgrade { headers.remove(name: "upgrade") }
        if te {
            headers.remove(name: "te")
            if teTrailers { headers.add(name: "te", value: "trailers") }
        }
    }

    /// The hop-by-hop headers a message carries.
    private struct HopByHop: OptionSet {
        let rawValue: UInt8
        static let connection = HopByHop(rawValue: 1)
        static let keepAlive = HopByHop(rawValue: 2)
        static let proxyConnection = HopByHop(rawValue: 4)
        static let transferEncoding = HopByHop(rawValue: 8)
        static let upgrade = HopByHop(rawValue: 16)
        static let te = HopByHop(rawValue: 32)

        static func kind(of name: String) -> HopByHop? {
            switch name.utf8.count {
            case 2: return name.equalsASCIICaseInsensitive("te") ? .te : nil
            case 7: return name.equalsASCIICaseInsensitive("upgrade") ? .upgrade : nil
            case 10:
                if name.equalsASCIICaseInsensitive("connection") { return .connection }
                return name.equalsASCIICaseInsensitive("keep-alive") ? .keepAlive : nil
            case 16: return name.equalsASCIICaseInsensitive("proxy-connection") ? .proxyConnection : nil
            case 17: return name.equalsASCIICaseInsensitive("transfer-encoding") ? .transferEncoding : nil
            default: return nil
            }
        }
    }

    /// Applies the connection manager's processing to `request` (its headers and `remote`).
    /// An HTTP/2 request's header block was checked for hop-by-hop headers
    /// (`HTTP2HeaderMapping`): only `te: trailers` can be there, and it moves to the end as
    /// `removeHopByHop` would move it.
    static func apply(
        to request: inout HTTPRequestContext, config: HTTPConnectionManagerConfig, internalOnly: [String],
        isHTTP2: Bool, random: inout FastRandom
    ) {
        // Taken out, so that the first change does not copy storage still shared with `request`.
        var headers = request.headers
        request.headers = HTTPHeaders()
        if !isHTTP2 {
            removeHopByHop(&headers)
        } else if headers.contains(name: "te") {
            headers.remove(name: "te")
            headers.add(name: "te", value: "trailers")
        }
        let directAddress = request.directRemote.address.unmappingIPv4
        var isInternalRequest: Bool
        if config.useRemoteAddress {
            isInternalRequest = config.internalAddresses?.contains { $0.contains(directAddress) } ?? false
            request.remote = request.directRemote
            if !config.skipXFFAppend {
                appendForwardedFor(&headers, address: directAddress.description)
            }
        } else {
            // The client is the address `xff_num_trusted_hops` from the right of XFF.
            let chain = headers["x-forwarded-for"].flatMap { $0.split(separator: ",") }
                .map { $0.trimmingASCIISpaces() }
            let index = chain.count - 1 - config.xffNumTrustedHops
            if index >= 0, let address = IPAddress(chain[index]) {
                request.remote = SocketEndpoint(address: address, port: 0)
            }
            // Envoy 1.40 counts no address as internal unless `internal_address_config` lists it.
            isInternalRequest = chain.count == 1 && IPAddress(chain[0]).map { address in
                config.internalAddresses?.contains { $0.contains(address) } ?? false
            } == true
        }
        let edge = config.useRemoteAddress && !isInternalRequest
        if edge {
            if headers.contains(where: { $0.name.hasASCIICaseInsensitivePrefix("x-envoy-") }) {
                for name in internalControlHeaders { headers.remove(name: name) }
            }
            headers.replaceOrAdd(name: "x-envoy-external-address", value: directAddress.description)
        } else {
            headers.remove(name: "x-envoy-internal")
        }
        if isInternalRequest { headers.replaceOrAdd(name: "x-envoy-internal", value: "true") }
        if !isInternalRequest { for name in internalOnly { headers.remove(name: name) } }
        if config.useRemoteAddress || !headers.contains(name: "x-forwarded-proto") {
            headers.replaceOrAdd(name: "x-forwarded-proto", value: request.scheme)
        }
        if config.generateRequestID {
            let keep = headers.contains(name: "x-request-id") && (!edge || config.preserveExternalRequestID)
            if !keep { headers.replaceOrAdd(name: "x-request-id", value: RequestID.make(&random)) }
        }
        if let via = config.via { headers.add(name: "via", value: via) }
        request.headers = headers
    }

    private static func appendForwardedFor(_ headers: inout HTTPHeaders, address: String) {
        let existing = headers["x-forwarded-for"]
        headers.remove(name: "x-forwarded-for")
        let joined = (existing + [address]).joined(separator: ",")
        headers.add(name: "x-forwarded-for", value: joined)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (no Foundation bridging on the data path).
    func trimmingASCIISpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
