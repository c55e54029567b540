import SluiceModel

/// Envoy's `HashPolicyImpl::generateHash`: each policy that yields a value is folded in as
/// `rotateLeft1(previous) XOR value` (the first as is); a `terminal` policy stops the walk once
/// a hash exists. Values are hashed with xxHash64, seed 0.
public enum RequestHash {
    /// The hash for `request`, or nil when no policy produced a value.
    public static func compute(_ policies: [HashPolicy], for request: HTTPRequestContext) -> UInt64? {
        var hash: UInt64?
        var query: QueryParameters?
        for policy in policies {
            if let value = evaluate(policy.source, request, &query) {
                let old = hash.map { ($0 << 1) | ($0 >> 63) } ?? 0
                hash = old ^ value
            }
            if policy.terminal && hash != nil { break }
        }
        return hash
    }

    private static func evaluate(_ source: HashPolicy.Source, _ request: HTTPRequestContext,
                                 _ query: inout QueryParameters?) -> UInt64? {
        switch source {
        case .header(let name):
            // Several values are sorted (so their order does not matter) and hashed as one stream,
            // as Envoy's `HashUtil::xxHash64(Span<string_view>)` feeds them to one XXH64 state.
            let values = headerValues(name.asciiLowercased, request)
            guard !values.isEmpty else { return nil }
            let sorted = values.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            return XXHash64.hash(Array(sorted.joined().utf8))
        case .cookie(let name):
            let value = cookieValue(name, in: request)
            return value.isEmpty ? nil : XXHash64.hash(value)
        case .sourceIP:
            return XXHash64.hash("\(request.remote.address)")
        case .queryParameter(let name):
            if query == nil { query = QueryParameters(path: request.path) }
            return query!.first(name).map { XXHash64.hash($0) }
        }
    }

    private static func headerValues(_ name: String, _ request: HTTPRequestContext) -> [String] {
        switch name {
        case ":path": return [request.path]
        case ":authority": return [request.authority]
        case ":method": return [request.method]
        case ":scheme": return [request.scheme]
        default: return request.headers[name]
        }
    }

    /// Envoy's `Utility::parseCookieValue`: the first `name=value` among the `cookie` headers'
    /// `;`-separated pairs (leading spaces trimmed, surrounding double quotes removed).
    static func cookieValue(_ name: String, in request: HTTPRequestContext) -> String {
        for header in request.headers["cookie"] {
            for pair in header.split(separator: ";", omittingEmptySubsequences: false) {
                let trimmed = pair.drop(while: { $0 == " " })
                guard let equal = trimmed.firstIndex(of: "=") else { continue }
                guard trimmed[..<equal] == name else { continue }
                var value = trimmed[trimmed.index(after: equal)...]
                if value.count >= 2, value.first == "\"", value.last == "\"" {
                    value = value.dropFirst().dropLast()
                }
                return String(value)
            }
        }
        return ""
    }
}
