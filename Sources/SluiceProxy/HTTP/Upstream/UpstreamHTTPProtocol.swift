/// Which protocol the proxy speaks to a cluster's hosts.
enum UpstreamHTTPProtocol: Hashable, Sendable {
    case http1
    case http2
}
