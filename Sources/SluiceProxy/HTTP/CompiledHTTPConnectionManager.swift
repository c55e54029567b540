import NIOConcurrencyHelpers
import NIOHTTP1
import SluiceModel

/// An HTTP connection manager's configuration prepared for the data path: stats, the route
/// table (inline, or looked up by RDS name per request) and the router's settings.
final class CompiledHTTPConnectionManager: Sendable {
    let config: HTTPConnectionManagerConfig
    let stats: HTTPConnectionManagerStats
    let runtime: HTTPRuntime
    let router: RouterConfig
    private let inlineTable: CompiledRouteTable?
    let serverHeaderValue: String?
    /// The HTTP filters in order, with the names per-route overrides refer to.
    let filters: [(name: String, filter: ConfiguredHTTPFilter)]
    let accessLoggers: [AccessLogger]
    private let store: StatsStore
    private let routeRateLimiters = NIOLockedValueBox<[LocalRateLimitConfig: LocalRateLimitFilter]>([:])

    init(config: HTTPConnectionManagerConfig, store: StatsStore, runtime: HTTPRuntime) throws {
        self.config = config
        self.stats = HTTPConnectionManagerStats(prefix: config.statPrefix, store: store)
        self.runtime = runtime
        var router = RouterConfig()
        for filter in config.httpFilters {
            if case .router(let routerConfig) = filter.kind { router = routerConfig }
        }
        self.router = router
        switch config.routes {
        case .inline(let table): inlineTable = try CompiledRouteTable(table)
        case .rds: inlineTable = nil
        }
        serverHeaderValue = config.serverHeaderTransformation == .passThrough ? nil : config.serverName
        self.store = store
        let built = try ConfiguredHTTPFilter.build(config.httpFilters, hcmStatPrefix: config.statPrefix, stats: store)
        filters = Array(zip(config.httpFilters.map(\.name), built))
        accessLoggers = try config.accessLogs.map { config throws in try AccessLogger(config) }
    }

    /// The filter a route's own local rate limit runs (its own bucket), made once per configuration.
    func routeRateLimiter(_ config: LocalRateLimitConfig) -> LocalRateLimitFilter? {
        routeRateLimiters.withLockedValue { limiters in
            if let existing = limiters[config] { return existing }
            guard let created = try? ConfiguredHTTPFilter.routeLocalRateLimit(config, stats: store) else { return nil }
            limiters[config] = created
            return created
        }
    }

    /// The route table in effect now; nil while an RDS configuration has not arrived.
    var routeTable: CompiledRouteTable? {
        if let inlineTable { return inlineTable }
        if case .rds(let name) = config.routes { return runtime.routeTables.table(named: name) }
        return nil
    }

    func internalOnlyHeaders(for request: HTTPRequestContext) -> [String] {
        routeTable?.config.internalOnlyHeaders ?? []
    }

    /// Routes `request`; no table (RDS not arrived) means no route, as in Envoy.
    func decide(_ request: HTTPRequestContext, random: UInt64) -> RouteDecision {
        guard let table = routeTable else { return .noRoute(virtualHost: nil) }
        return table.decide(request, random: random)
    }

    /// Substitutes command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`…) in a header value.
    func substitute(_ value: String, for request: HTTPRequestContext) -> String {
        HeaderValueFormatter.format(value, request: request)
    }

    /// Sets `server` as `server_header_transformation` says.
    func applyServerHeader(_ headers: inout HTTPHeaders) {
        switch config.serverHeaderTransformation {
        case .overwrite: headers.replaceOrAdd(name: "server", value: config.serverName)
        case .appendIfAbsent: if !headers.contains(name: "server") { headers.add(name: "server", value: config.serverName) }
        case .passThrough: break
        }
    }

    /// Writes one finished stream to every access log.
    func log(_ entry: AccessLogEntry) {
        for logger in accessLoggers { logger.log(entry) }
    }
}
