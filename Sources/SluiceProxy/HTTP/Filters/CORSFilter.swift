import SluiceModel

/// `envoy.filters.http.cors`: answers preflight requests and adds CORS headers to responses, with
/// the policies of the route and its virtual host (the filter has no configuration of its own).
///
/// Stats: `http.<hcm>.cors.origin_valid` and `origin_invalid`.
public final class CORSFilter: Sendable {
    let originValid: Counter
    let originInvalid: Counter

    public init(hcmStatPrefix: String, stats: StatsStore) {
        originValid = stats.counter(.http(hcmStatPrefix, "cors.origin_valid"))
        originInvalid = stats.counter(.http(hcmStatPrefix, "cors.origin_invalid"))
    }

    /// What to do with a request.
    public enum Decision: Equatable, Sendable {
        /// Forward the request; set these headers on its response (empty for non-CORS requests).
        case proceed(responseHeaders: [Header])
        /// A preflight answered here: `200` with these headers and no body
        /// (`%RESPONSE_CODE_DETAILS%` `cors_response`).
        case respond(status: Int, headers: [Header])
    }

    /// A response header name and value.
    public struct Header: Hashable, Sendable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// Decides on a request head after routing. `policies` are the CORS policies that apply, most specific
    /// first (the route's, then the virtual host's — from `typed_per_filter_config` when any is there,
    /// else the deprecated `cors` fields); a setting comes from the first policy that has it, and
    /// `filter_enabled`/`shadow_enabled` from the first policy only. `random` draws those fractions.
    public func decodeHeaders(_ request: HTTPRequestContext, policies: [CORSPolicy],
                              random: inout some RandomNumberGenerator) -> Decision {
        guard let first = policies.first else { return .proceed(responseHeaders: []) }
        let enabled = first.filterEnabled.sample(&random)
        let shadowEnabled = first.shadowEnabled?.sample(&random) ?? false
        guard enabled || shadowEnabled else { return .proceed(responseHeaders: []) }
        guard let origin = request.headers.first(name: "origin"), !origin.isEmpty else { return .proceed(responseHeaders: []) }

        let allowOrigins = policies.first { !$0.allowOrigins.isEmpty }?.allowOrigins ?? []
        let originAllowed = allowOrigins.contains {
            FilterMatching.matches($0, "*") || FilterMatching.matches($0, origin)
        }
        (originAllowed ? originValid : originInvalid).increment()
        guard enabled else { return .proceed(responseHeaders: []) }

        let allowCredentials = policies.lazy.compactMap(\.allowCredentials).first ?? false
        let exposeHeaders = policies.lazy.compactMap(\.exposeHeaders).first { !$0.isEmpty }
        var responseHeaders: [Header] = []
        if originAllowed {
            responseHeaders.append(Header("access-control-allow-origin", origin))
            if allowCredentials { responseHeaders.append(Header("access-control-allow-credentials", "true")) }
            if let exposeHeaders { responseHeaders.append(Header("access-control-expose-headers", exposeHeaders)) }
        }

        let requestMethod = request.headers.first(name: "access-control-request-method") ?? ""
        guard request.method == "OPTIONS", !requestMethod.isEmpty else { return .proceed(responseHeaders: responseHeaders) }
        // A preflight.
        if !originAllowed, first.forwardNotMatchingPreflights { return .proceed(responseHeaders: []) }

        var headers: [Header] = []
        if originAllowed { headers.append(Header("access-control-allow-origin", origin)) }
        if allowCredentials { headers.append(Header("access-control-allow-credentials", "true")) }
        if let methods = policies.lazy.compactMap(\.allowMethods).first(where: { !$0.isEmpty }) {
            headers.append(Header("access-control-allow-methods", methods == "*" ? requestMethod : methods))
        }
        if let allowHeaders = policies.lazy.compactMap(\.allowHeaders).first(where: { !$0.isEmpty }) {
            let requested = request.headers.first(name: "access-control-request-headers") ?? ""
            headers.append(Header("access-control-allow-headers", allowHeaders == "*" ? requested : allowHeaders))
        }
        if let maxAge = policies.lazy.compactMap(\.maxAge).first(where: { !$0.isEmpty }) {
            headers.append(Header("access-control-max-age", maxAge))
        }
        let allowPrivateNetwork = policies.lazy.compactMap(\.allowPrivateNetworkAccess).first ?? false
        if allowPrivateNetwork, request.headers.first(name: "access-control-request-private-network") == "true" {
            headers.append(Header("access-control-allow-private-network", "true"))
        }
        // The local response passes this filter's response side too, which adds the expose headers.
        if originAllowed, let exposeHeaders { headers.append(Header("access-control-expose-headers", exposeHeaders)) }
        return .respond(status: 200, headers: headers)
    }
}
