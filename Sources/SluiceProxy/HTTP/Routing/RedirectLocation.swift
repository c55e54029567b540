import SluiceModel

/// Builds a redirect's `Location` as Envoy's `Http::Utility::newUri` does.
enum RedirectLocation {
    /// The request path after the redirect's `prefix_rewrite` or `regex_rewrite` (Envoy rewrites
    /// `:path` first, then builds the URI from it). An empty regex result leaves the path alone.
    static func rewrittenRequestPath(_ redirect: RedirectAction, compiled: CompiledRoute, request: HTTPRequestContext) -> String {
        switch redirect.path {
        case .prefix(let prefix) where !prefix.isEmpty:
            return PathRewrite.replacePrefix(of: request.path, length: compiled.matchedPathLength(request), with: prefix)
        case .regex(_, let substitution):
            guard let regex = compiled.redirectRegex else { return request.path }
            let replaced = regex.replaceAll(request.pathWithoutQuery, with: substitution)
            return replaced.isEmpty ? request.path : PathRewrite.replacePathKeepingQuery(request.path, with: replaced)
        default:
            return request.path
        }
    }

    /// `scheme://host[:port]/path[?query]`: the scheme is the redirect's or the request's `:scheme`;
    /// the port appears only when `port_redirect` is set (and then replaces the request's); the
    /// request's own port is kept unless the scheme changes away from the `x-forwarded-proto`
    /// scheme whose default port it is (`:80` for http, `:443` for https); `path_redirect` keeps
    /// the request's query unless it has its own; `strip_query` drops the query otherwise.
    static func build(_ redirect: RedirectAction, request: HTTPRequestContext, path currentPath: String) -> String {
        let scheme = redirect.scheme.flatMap { $0.isEmpty ? nil : $0 } ?? request.scheme
        let port = redirect.port.flatMap { $0 == 0 ? nil : ":\($0)" } ?? ""
        let host: String
        if let h = redirect.host, !h.isEmpty {
            host = h
        } else {
            let forwardedProto = request.headers.first(name: "x-forwarded-proto") ?? request.scheme
            host = requestHost(request.authority, newScheme: scheme, newPort: port, forwardedProto: forwardedProto)
        }
        var path: String
        var redirectPathHasQuery = false
        if case .path(let p) = redirect.path, !p.isEmpty {
            if p.contains("?") {
                redirectPathHasQuery = true
                path = p
            } else if let q = currentPath.firstIndex(of: "?") {
                path = p + currentPath[q...]
            } else {
                path = p
            }
        } else {
            path = currentPath
        }
        if !path.hasPrefix("/") { path = "/" + path }
        if !redirectPathHasQuery && redirect.stripQuery, let q = path.firstIndex(of: "?") {
            path = String(path[..<q])
        }
        return "\(scheme)://\(host)\(port)\(path)"
    }

    /// Envoy's `processRequestHost`.
    static func requestHost(_ authority: String, newScheme: String, newPort: String, forwardedProto: String) -> String {
        guard !authority.isEmpty else { return authority }
        let portStart: String.Index?
        if authority.hasPrefix("[") {
            portStart = authority.range(of: "]:", options: .backwards).map { authority.index(after: $0.lowerBound) }
        } else {
            portStart = authority.lastIndex(of: ":")
        }
        guard let portStart else { return authority }
        let requestPort = authority[portStart...]
        var removePort = !newPort.isEmpty
        if newScheme != forwardedProto {
            let proto = forwardedProto.asciiLowercased
            removePort = removePort || (proto == "https" && requestPort == ":443")
            removePort = removePort || (proto == "http" && requestPort == ":80")
        }
        return removePort ? String(authority[..<portStart]) : authority
    }
}
