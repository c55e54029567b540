import NIOCore
import SluiceModel

/// One entry of an HTTP connection manager's `http_filters`, ready to run: what the connection manager
/// builds once per listener configuration and keeps for every stream.
public enum ConfiguredHTTPFilter: Sendable {
    case router(RouterConfig)
    case fault(FaultFilter)
    case rbac(RBACFilter)
    case localRateLimit(LocalRateLimitFilter)
    case cors(CORSFilter)

    /// Builds the filters in order. A bad filter fails the whole list, with an error naming the filter by
    /// its position and name (`http_filters[1] (envoy.filters.http.rbac): ...`).
    public static func build(_ filters: [HTTPFilter], hcmStatPrefix: String, stats: StatsStore,
                             now: NIODeadline = .now()) throws(FilterConfigError) -> [ConfiguredHTTPFilter] {
        var built: [ConfiguredHTTPFilter] = []
        for (index, filter) in filters.enumerated() {
            do {
                switch filter.kind {
                case .router(let config): built.append(.router(config))
                case .fault(let config):
                    built.append(.fault(try FaultFilter(config: config, hcmStatPrefix: hcmStatPrefix, stats: stats)))
                case .rbac(let config):
                    built.append(.rbac(try RBACFilter(config: config, hcmStatPrefix: hcmStatPrefix, stats: stats)))
                case .localRateLimit(let config):
                    built.append(.localRateLimit(try LocalRateLimitFilter(config: config, stats: stats, now: now)))
                case .cors: built.append(.cors(CORSFilter(hcmStatPrefix: hcmStatPrefix, stats: stats)))
                }
            } catch {
                throw FilterConfigError(field: "http_filters[\(index)] (\(filter.name))", problem: error.description)
            }
        }
        return built
    }

    /// The filter a route's local rate limit override runs: built once per route configuration (each override
    /// has its own bucket and stats), looked up per request by the route.
    public static func routeLocalRateLimit(_ config: LocalRateLimitConfig, stats: StatsStore, now: NIODeadline = .now())
        throws(FilterConfigError) -> LocalRateLimitFilter
    {
        try LocalRateLimitFilter(config: config, stats: stats, now: now, perRoute: true)
    }
}
