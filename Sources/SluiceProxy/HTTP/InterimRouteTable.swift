import NIOHTTP1
import SluiceModel

// Interim: replaced by the routing engine at merge.
final class CompiledRouteTable: Sendable {
    let config: RouteConfiguration
    init(_ config: RouteConfiguration) throws { self.config = config }

    func resolve(_ request: inout HTTPRequestContext, random: UInt64) -> HTTPRouteResolution {
        let host = request.authority.lowercased()
        guard let vhost = config.virtualHosts.first(where: { $0.domains.contains(host) })
            ?? config.virtualHosts.first(where: { $0.domains.contains("*") }) else { return .reply(.noRoute) }
        for route in vhost.routes {
            let path = String(request.pathWithoutQuery)
            switch route.match.path {
            case .prefix(let prefix): if !path.hasPrefix(prefix) { continue }
            case .path(let exact): if path != exact { continue }
            default: continue
            }
            switch route.action {
            case .forward(let action):
                guard case .cluster(let name) = action.target else { return .reply(.noRoute) }
                return .forward(ForwardTarget(
                    clusterName: name, routeName: route.name, virtualHostName: vhost.name, action: action,
                    rewrittenPath: nil, rewrittenAuthority: nil, autoHostRewrite: false,
                    retryPolicy: action.retryPolicy ?? vhost.retryPolicy, hashKey: nil, includeAttemptCount: false,
                    includeAttemptCountInResponse: false, mutateRequest: { _, _ in }, mutateResponse: { _, _ in },
                    filterOverrides: [:]))
            case .directResponse(let status, let body):
                return .reply(LocalReply(status: status, body: body ?? "", details: "direct_response"))
            case .redirect, .nonForwarding:
                return .reply(.noRoute)
            }
        }
        return .reply(.noRoute)
    }
}
