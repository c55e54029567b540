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

    static let hopByHop: [String] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]

    /// Removes hop-by-hop headers and those the `Connection` header names. `te` survives only
    /// as `trailers`. One pass finds what is there, so the common request without any of them
    /// costs no removal.
    static func removeHopByHop(_ headers: inout HTTPHeaders, keepUpgrade: Bool = false) {
        var found = false
        for (name, _) in headers where isHopByHop(name) {
            found = true
            break
        }
        guard found else { return }
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                let name = token.trimmingASCIISpaces().lowercased()
                if keepUpgrade, name == "upgrade" { continue }
                if !name.isEmpty, name != "close", name != "keep-alive" { headers.remove(name: name) }
            }
        }
        for name in hopByHop where !(keepUpgrade && (name == "upgrade" || name == "connection")) {
            headers.remove(name: name)
        }
        if headers.contains(name: "te") {
            let trailers = headers["te"].contains { $0.lowercased().contains("trailers") }
            headers.remove(name: "te")
            if trailers { headers.add(name: "te", value: "trailers") }
        }
    }

    private static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.lowercased() == "te"
        case 7: return name.lowercased() == "upgrade"
        case 10: let lower = name.lowercased(); return lower == "connection" || lower == "keep-alive"
        case 16: return name.lowercased() == "proxy-connection"
        case 17: return name.lowercased() == "transfer-encoding"
        default: return false
        }
    }

    /// Applies the connection manager's processing to `request` (its headers and `remote`).
    static func apply(
        to request: inout HTTPRequestContext, config: HTTPConnectionManagerConfig, internalOnly: [String],
        random: inout FastRandom
    ) {
        var headers = request.headers
        removeHopByHop(&headers)
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
            for name in internalControlHeaders { headers.remove(name: name) }
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
