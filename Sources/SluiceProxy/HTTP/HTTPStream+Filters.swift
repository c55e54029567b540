import NIOCore
import NIOHTTP1
import SluiceModel

/// What the HTTP filters keep for one stream until its response goes out.
struct HTTPFilterStreamState {
    var fault: FaultFilter.Stream?
    var rateLimit: LocalRateLimitFilter.Decision?
    var corsHeaders: [CORSFilter.Header] = []

    var flags: ResponseFlags { fault?.responseFlags ?? [] }

    /// Headers the filters add to the response head (CORS, `x-ratelimit-*`).
    func addResponseHeaders(to headers: inout HTTPHeaders) {
        for header in corsHeaders { headers.replaceOrAdd(name: header.name, value: header.value) }
        for (name, value) in rateLimit?.responseHeaders(now: .now()) ?? [] { headers.replaceOrAdd(name: name, value: value) }
    }

    mutating func streamEnded() {
        fault?.streamEnded()
    }
}

extension HTTPStream {
    /// Runs the HCM's filters in order from `index` (after routing, so per-route overrides apply);
    /// the router at the end acts on the route decision. A fault delay pauses the chain.
    func runFilters(from index: Int) {
        let filters = manager.filters
        var position = index
        while position < filters.count, !finished {
            let (name, filter) = filters[position]
            let override = overrides[name]
            switch filter {
            case .router:
                if let routeDecision { route(routeDecision) }
                return
            case .fault(let fault):
                var stream = filterState.fault ?? fault.makeStream()
                let action = stream.decodeHeaders(request, routeOverride: override, upstreamCluster: clusterName, random: &connection.random)
                filterState.fault = stream
                switch action {
                case .proceed: break
                case .abort(let reply):
                    sendLocalReply(LocalReply(reply))
                    return
                case .delay(let delay):
                    let next = position + 1
                    eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [weak self] in
                        guard let self, !self.finished else { return }
                        if case .abort(let reply) = self.filterState.fault?.delayElapsed(self.request, random: &self.connection.random) {
                            self.sendLocalReply(LocalReply(reply))
                        } else {
                            self.runFilters(from: next)
                        }
                    }
                    return
                }
            case .rbac(let rbac):
                if let reply = rbac.decodeHeaders(request, routeOverride: override).localReply {
                    sendLocalReply(LocalReply(reply))
                    return
                }
            case .localRateLimit(let limiter):
                let routeLimiter: LocalRateLimitFilter?
                if case .localRateLimit(let config)? = override {
                    routeLimiter = manager.routeRateLimiter(config)
                } else {
                    routeLimiter = nil
                }
                if case .disabled? = override { break }
                let decision = limiter.decodeHeaders(
                    routeOverride: routeLimiter, connection: connection.rateLimitBuckets, now: .now(), random: &connection.random)
                filterState.rateLimit = decision
                if let reply = decision.localReply {
                    var local = LocalReply(reply)
                    HeaderMutator.apply(add: decision.replyHeadersToAdd, remove: [], to: &local.headers)
                    sendLocalReply(local)
                    return
                }
                if !decision.requestHeadersToAdd.isEmpty {
                    HeaderMutator.apply(add: decision.requestHeadersToAdd, remove: [], to: &request.headers)
                }
            case .cors(let cors):
                var policies: [CORSPolicy] = []
                if case .cors(let policy)? = override { policies.append(policy) }
                if case .disabled? = override { break }
                switch cors.decodeHeaders(request, policies: policies, random: &connection.random) {
                case .proceed(let headers):
                    filterState.corsHeaders = headers
                case .respond(let status, let headers):
                    var reply = LocalReply(status: status, body: "", details: "cors_response")
                    for header in headers { reply.headers.add(name: header.name, value: header.value) }
                    reply.bareStatus = true
                    sendLocalReply(reply)
                    return
                }
            }
            position += 1
        }
        // No router configured: Envoy answers nothing useful either; treat as no route.
        if position >= filters.count, !finished { sendLocalReply(.noRoute) }
    }

    /// Per-filter overrides of the matched route (most specific level).
    private var overrides: [String: PerRouteFilterConfig] {
        if case .forward(let plan)? = routeDecision { return plan.filterOverrides }
        return [:]
    }

    /// The cluster the route sends to, for the fault filter's `upstream_cluster`.
    private var clusterName: String? {
        if case .forward(let plan)? = routeDecision { return plan.clusterName }
        return nil
    }
}

extension LocalReply {
    /// A filter's local reply (fault abort, RBAC denial, rate limit).
    init(_ reply: FilterLocalReply) {
        var headers = HTTPHeaders()
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        self.init(status: reply.status, body: reply.body, details: reply.details, flag: "", headers: headers)
        self.filterFlags = reply.flags
        self.grpcStatusOverride = reply.grpcStatus
    }
}
