import Logging
import NIOCore
import NIOHTTP1
import SluiceModel

/// Writes one stream's response to the downstream: the HTTP/1 connection or the HTTP/2 stream.
protocol DownstreamResponseWriter: AnyObject {
    func writeResponseHead(_ head: HTTPResponseHead)
    func writeResponseBody(_ body: ByteBuffer)
    func writeResponseEnd(_ trailers: HTTPHeaders?)
    /// Ends the stream abruptly (HTTP/1: closes the connection; HTTP/2: resets the stream).
    func resetStream()
    var downstreamIsWritable: Bool { get }
    /// Reading of the request body resumes (the upstream drained).
    func resumeRequestReading()
    /// After an accepted upgrade: stops speaking HTTP and joins the connection to `tunnel`.
    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool
}

/// One downstream request and its response: connection manager processing, routing, the
/// router's attempts with retries and timeouts, and the response back. Lives on the stream's
/// event loop; every upstream callback arrives there too.
final class HTTPStream: UpstreamResponseReceiver {
    let manager: CompiledHTTPConnectionManager
    let connection: HTTPDownstreamConnection
    private weak var downstream: (any DownstreamResponseWriter)?
    let eventLoop: any EventLoop

    var request: HTTPRequestContext
    private var requestVersion: HTTPVersion
    private var isHeadRequest: Bool
    private let isGRPC: Bool
    /// The protocol an HTTP/1.1 upgrade request asks for (`websocket`), nil for other requests.
    private var upgradeType: String?
    let startTime = NIODeadline.now()

    private var bufferedBody: [ByteBuffer] = []
    private var bufferedBytes = 0
    /// Cleared when the body outgrows the buffer limit: such a request cannot be retried.
    private var keepsBodyForRetry = true
    /// An HTTP/1 request framed with `transfer-encoding: chunked` (the header itself is hop-by-hop).
    private let requestChunked: Bool
    /// An HTTP/2 request's head, held until its first body frame or its end shows the framing.
    private var deferredHead: HTTPRequestHead?
    private(set) var requestComplete = false
    private var requestTrailers: HTTPHeaders?
    private(set) var bytesReceived = 0
    private(set) var bytesSent = 0

    private var target: ForwardPlan?
    /// The stream's random value: route fractions, weighted picks and mirrors use it, as Envoy's stream id.
    private let random: UInt64
    /// Response header mutations of the route that answered, for local replies too.
    private var responseMutations: [HeaderMutationStep] = []
    var routeDecision: RouteDecision?
    private(set) var routeName: String?
    /// Per-stream state of the HTTP filters (fault's active count, rate limit headers, CORS headers).
    var filterState = HTTPFilterStreamState()
    private(set) var flags: ResponseFlags = []
    private(set) var sentResponseHeaders: HTTPHeaders?
    private(set) var sentResponseTrailers: HTTPHeaders?
    /// The status of a gRPC trailers-only response, sent as trailers to HTTP/2 clients.
    private var trailersOnlyStatus = HTTPHeaders()
    private var firstResponseByte: NIODeadline?
    private var requestEndTime: NIODeadline?
    let wallStart = WallClockTime.now()
    /// Copies of this request toward mirror clusters, started with the first attempt.
    private var shadows: [ShadowRequest] = []
    private var shadowsStarted = false
    /// Resources held in the cluster's circuit breakers for the current attempt.
    private var heldRequest = false
    private var heldRetry = false
    private var cluster: UpstreamCluster?
    private var clusterStats: HTTPClusterStats?
    private var retry = RetryState(policy: nil)
    private var sink: (any UpstreamRequestSink)?
    private var waitingPool: HTTPUpstreamHostPool?
    private var host: UpstreamHost?
    private var attemptCount = 0
    private var attemptStart = NIODeadline.now()
    private var triedHosts: Set<ObjectIdentifier> = []
    private var routeTimeout: Duration?
    private var perTryTimeout: Duration?
    private var routeTimer: Timeout?
    private var perTryTimer: Scheduled<Void>?
    private var retryTimer: Scheduled<Void>?
    private var idleTimer: Timeout?
    private var lastActivity = NIODeadline.now()

    private(set) var responseStarted = false
    private(set) var responseStatus = 0
    private(set) var responseDetails = ""
    private(set) var finished = false

    init(
        head: HTTPRequestHead, manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection,
        downstream: any DownstreamResponseWriter, eventLoop: any EventLoop
    ) {
        self.manager = manager
        self.connection = connection
        self.downstream = downstream
        self.eventLoop = eventLoop
        self.requestVersion = head.version
        self.isHeadRequest = head.method == .HEAD
        self.requestChunked = head.headers.anyValue(of: "transfer-encoding", containsASCIICaseInsensitive: "chunked")
        // Taken out of `head`, so that removing `host` does not copy storage shared with it.
        var head = head
        var headers = head.headers
        head.headers = HTTPHeaders()
        let authority = headers.first(name: "host") ?? ""
        headers.remove(name: "host")
        self.request = HTTPRequestContext(
            method: head.method.rawValue, path: head.uri, authority: authority, headers: headers,
            protocolName: connection.isHTTP2 ? "HTTP/2" : (head.version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1"),
            directRemote: connection.remote, local: connection.local)
        self.isGRPC = request.isGRPC
        self.random = connection.random.next()
    }

    // MARK: Downstream events

    /// The request head arrived: process headers, route, and start forwarding.
    func start() {
        let stats = manager.stats
        stats.downstreamRequestsTotal.increment()
        (connection.isHTTP2 ? stats.downstreamRequestsHTTP2Total : stats.downstreamRequestsHTTP1Total).increment()
        stats.downstreamRequestsActive.increment()
        armIdleTimer()
        if let limit = manager.config.requestTimeout {
            routeTimer = connection.loop.timeouts.after(limit) { [weak self] in
                guard let self, !self.requestComplete else { return }
                self.manager.stats.downstreamRequestTimeouts.increment()
                self.abandonUpstream()
                self.sendLocalReply(.requestTimeout)
            }
        }
        if request.headers.first(name: "expect")?.lowercased() == "100-continue" {
            // Envoy answers 100-continue itself and does not forward the expectation.
            request.headers.remove(name: "expect")
            if !connection.isHTTP2 {
                downstream?.writeResponseHead(HTTPResponseHead(version: requestVersion, status: .continue))
            }
        }
        if !connection.isHTTP2,
           request.headers.anyValue(of: "connection", containsASCIICaseInsensitive: "upgrade"),
           let type = request.headers.first(name: "upgrade")?.lowercased(), type != "h2c" {
            upgradeType = type
        }
        if exceedsHeaderLimits() {
            manager.stats.downstreamRequestHeadersTooLarge.increment()
            sendLocalReply(.headersTooLarge)
            return
        }
        if manager.config.normalizePath || manager.config.mergeSlashes {
            request.path = PathNormalization.normalize(
                request.path, removeDotSegments: manager.config.normalizePath, mergeSlashes: manager.config.mergeSlashes)
        }
        if request.path.containsASCII(UInt8(ascii: "#")) {
            // Envoy's HTTP/1 codec refuses a request target with a fragment.
            sendLocalReply(LocalReply(status: 400, body: "", details: "http1.invalid_url"))
            return
        }
        let internalOnly = manager.internalOnlyHeaders(for: request)
        ForwardedHeaders.apply(
            to: &request, config: manager.config, internalOnly: internalOnly, isHTTP2: connection.isHTTP2, random: &connection.random)

        let decision = manager.decide(request, random: random)
        routeDecision = decision
        if case .forward(let plan) = decision {
            responseMutations = plan.responseHeaderMutations
            routeName = plan.routeName
        }
        runFilters(from: 0)
    }

    /// `max_request_headers_kb` (names and values, as Envoy counts) and `max_headers_count`.
    private func exceedsHeaderLimits() -> Bool {
        var bytes = request.path.utf8.count + request.authority.utf8.count + request.method.utf8.count
        var count = 0
        for (name, value) in request.headers {
            bytes += name.utf8.count + value.utf8.count
            count += 1
        }
        return bytes > manager.config.maxRequestHeadersKB * 1024 || count > manager.config.maxRequestHeadersCount
    }

    /// The router's part, after every other filter let the request through.
    func route(_ decision: RouteDecision) {
        let stats = manager.stats
        switch decision {
        case .noRoute:
            stats.noRoute.increment()
            sendLocalReply(.noRoute)
        case .redirect(let status, let location, let route):
            stats.redirects.increment()
            responseMutations = route.responseHeaderMutations
            var headers = HTTPHeaders()
            headers.add(name: "location", value: location)
            sendLocalReply(LocalReply(status: status, body: "", details: "direct_response", headers: headers))
        case .directResponse(let status, let body, let location, let route):
            stats.directResponses.increment()
            responseMutations = route.responseHeaderMutations
            var headers = HTTPHeaders()
            if let location { headers.add(name: "location", value: location) }
            sendLocalReply(LocalReply(status: status, body: body ?? "", details: "direct_response", headers: headers))
        case .forward(let plan):
            if let upgradeType, !(plan.action.upgradeConfigs[upgradeType] ?? manager.config.upgradeTypes[upgradeType] ?? false) {
                stats.upgradeOnNonUpgradeRoute.increment()
                sendLocalReply(LocalReply(status: 403, body: "", details: "upgrade_failed"))
                return
            }
            forward(plan)
        }
    }

    func receivedBody(_ body: ByteBuffer) {
        bytesReceived += body.readableBytes
        manager.stats.downstreamBytesReceived.add(UInt64(body.readableBytes))
        touch()
        guard !finished else { return }
        if keepsBodyForRetry {
            bufferedBytes += body.readableBytes
            if bufferedBytes > connection.bufferLimit {
                keepsBodyForRetry = false
                if sink == nil {
                    // Nothing to forward to yet and no room to hold it: Envoy answers 413.
                    if target == nil || waitingPool != nil || retryTimer != nil {
                        manager.stats.downstreamRequestTooLarge.increment()
                        abandonUpstream()
                        sendLocalReply(.payloadTooLarge)
                        return
                    }
                }
                bufferedBody.removeAll()
            } else {
                bufferedBody.append(body)
            }
        }
        for shadow in shadows { shadow.body(body) }
        if let deferredHead, let sink {
            if !keepsBodyForRetry { bufferedBody.append(body) }
            sendHead(deferredHead, to: sink)
            if !keepsBodyForRetry { bufferedBody.removeAll() }
            return
        }
        sink?.writeBody(body)
    }

    func receivedEnd(_ trailers: HTTPHeaders?) {
        touch()
        requestComplete = true
        requestEndTime = .now()
        requestTrailers = trailers
        guard !finished else { return }
        routeTimer?.cancel()
        routeTimer = nil
        for shadow in shadows { shadow.end(trailers) }
        if let deferredHead, let sink {
            sendHead(deferredHead, to: sink)
        } else if let sink {
            sink.writeEnd(trailers)
            startPerTryTimer()
        }
        startRouteTimer()
    }

    /// The downstream went away (connection closed or stream reset) before the response ended.
    func downstreamReset() {
        if !requestComplete { for shadow in shadows { shadow.cancel() } }
        guard !finished else { return }
        if sink != nil { clusterStats?.sentResets.increment() }
        abandonUpstream()
        flags.insert(.downstreamConnectionTermination)
        finish(status: responseStarted ? responseStatus : 0)
    }

    /// Whether the downstream reader may pull more request body.
    var upstreamAcceptsBody: Bool { sink?.isWritable ?? (bufferedBytes <= connection.bufferLimit) }

    func downstreamWritabilityChanged(_ writable: Bool) {
        if writable { sink?.resumeReading() }
    }

    var downstreamWritable: Bool { downstream?.downstreamIsWritable ?? false }

    // MARK: Forwarding

    private func forward(_ target: ForwardPlan) {
        self.target = target
        if !target.requestHeaderMutations.isEmpty {
            let original = request
            HeaderMutator.apply(target.requestHeaderMutations, to: &request.headers) { [manager] in
                manager.substitute($0, for: original)
            }
        }
        if let host = target.rewrittenHost(after: request.headers) {
            // Copies: two inout accesses to one stored property would overlap.
            var authority = request.authority
            var headers = request.headers
            if !manager.router.suppressEnvoyHeaders { headers.replaceOrAdd(name: "x-envoy-original-host", value: authority) }
            AuthorityRewrite.apply(host, authority: &authority, headers: &headers, appendXForwardedHost: target.action.appendXForwardedHost)
            request.authority = authority
            request.headers = headers
        }
        guard !target.clusterName.isEmpty, let cluster = connection.clusters.cluster(named: target.clusterName) else {
            manager.stats.noCluster.increment()
            sendLocalReply(.clusterNotFound(status: target.action.clusterNotFoundStatus))
            return
        }
        self.cluster = cluster
        let stats = connection.runtime.clusterStats(cluster)
        clusterStats = stats
        retry = RetryState(policy: Self.retryPolicy(target.retryPolicy, applying: &request.headers))
        (routeTimeout, perTryTimeout) = timeouts(for: target)
        startAttempt()
    }

    /// The route's timeout and per-try timeout after Envoy's request headers and gRPC timeout.
    private func timeouts(for target: ForwardPlan) -> (Duration?, Duration?) {
        var timeout = target.action.timeout
        var perTry = target.retryPolicy?.perTryTimeout
        if let max = target.action.grpcTimeoutHeaderMax, isGRPC,
           let value = request.headers.first(name: "grpc-timeout"), let parsed = Self.grpcTimeout(value) {
            timeout = max == .zero ? parsed : min(parsed, max)
            if let offset = target.action.grpcTimeoutHeaderOffset, let current = timeout, current > offset {
                timeout = current - offset
            }
        }
        if request.headers.contains(where: { $0.name.hasASCIICaseInsensitivePrefix("x-envoy-upstream-rq") }) {
            if let value = request.headers.first(name: "x-envoy-upstream-rq-timeout-ms"), let ms = Int64(value) {
                timeout = ms == 0 ? nil : .milliseconds(ms)
            }
            if let value = request.headers.first(name: "x-envoy-upstream-rq-per-try-timeout-ms"), let ms = Int64(value) {
                perTry = ms == 0 ? nil : .milliseconds(ms)
            }
            request.headers.remove(name: "x-envoy-upstream-rq-timeout-ms")
            request.headers.remove(name: "x-envoy-upstream-rq-per-try-timeout-ms")
        }
        if timeout == .zero { timeout = nil }
        return (timeout, perTry)
    }

    /// The route's retry policy with Envoy's request headers applied (`x-envoy-retry-on` and
    /// `x-envoy-retry-grpc-on` add conditions, `x-envoy-max-retries` sets the count); the router
    /// consumes these headers, so they are removed.
    static func retryPolicy(_ route: RetryPolicy?, applying headers: inout HTTPHeaders) -> RetryPolicy? {
        guard headers.contains(where: { $0.name.hasASCIICaseInsensitivePrefix("x-envoy-") }) else { return route }
        var policy = route
        let conditions = (headers["x-envoy-retry-on"] + headers["x-envoy-retry-grpc-on"])
            .flatMap { $0.split(separator: ",") }
            .compactMap { RetryPolicy.Condition(rawValue: $0.trimmingASCIISpaces()) }
        if !conditions.isEmpty {
            policy = policy ?? RetryPolicy()
            policy!.retryOn.formUnion(conditions)
        }
        if let value = headers.first(name: "x-envoy-max-retries"), let count = Int(value), policy != nil {
            policy!.numRetries = count
        }
        for name in ["x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries", "x-envoy-retriable-status-codes",
                     "x-envoy-retriable-header-names", "x-envoy-hedge-on-per-try-timeout", "x-envoy-upstream-rq-timeout-alt-response"] {
            headers.remove(name: name)
        }
        return policy
    }

    /// gRPC's `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
    static func grpcTimeout(_ value: String) -> Duration? {
        guard let unit = value.last, let amount = Int64(value.dropLast()), value.count <= 9 else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }

    private func startAttempt() {
        guard let cluster, let target, let clusterStats, !finished else { return }
        if !heldRequest {
            // `max_requests` holds for the request's whole life, retries included.
            guard cluster.circuitBreakers.tryAcquire(.requests) else {
                var reply = LocalReply.overflow
                reply.headers.add(name: "x-envoy-overloaded", value: "true")
                sendLocalReply(reply)
                return
            }
            heldRequest = true
        }
        var balancing = LoadBalancerContext(
            hashKey: hashKey, hostSelectionRetryMaxAttempts: target.retryPolicy?.hostSelectionMaxAttempts ?? 1,
            originalDestination: connection.local)
        if target.retryPolicy?.avoidPreviousHosts == true { balancing.hostsToAvoid = triedHosts }
        guard let host = cluster.chooseHost(balancing) else {
            cluster.stats.upstreamNoneHealthy.increment()
            sendLocalReply(.noHealthyUpstream)
            return
        }
        self.host = host
        triedHosts.insert(ObjectIdentifier(host))
        host.markUsed(at: NIODeadline.now().uptimeNanoseconds)
        host.activeRequests.increment()
        attemptCount += 1
        attemptStart = .now()
        let pool = connection.loop.pools.pool(
            host: host, cluster: cluster, connection: connection, upstreamProtocol: upstreamProtocol(for: cluster))
        waitingPool = pool
        clusterStats.requestsTotal.increment()
        clusterStats.requestsActive.increment()
        let accepted = pool.acquire(for: self) { [weak self] result in
            guard let self else {
                if case .success(let sink) = result { sink.reset() }
                return
            }
            self.waitingPool = nil
            switch result {
            case .success(let sink): self.attached(sink)
            case .failure(let failure): self.attemptEnded(.failure(failure))
            }
        }
        if !accepted {
            waitingPool = nil
            clusterStats.requestsActive.decrement()
            host.activeRequests.decrement()
            self.host = nil
            sendLocalReply(.overflow)
        }
    }

    /// The consistent-hash key of the route's hash policies, computed once per request.
    private lazy var hashKey: UInt64? = target?.hash(for: request)

    /// Gives back what the current attempt (and the request) hold: the host's active request and
    /// the circuit breakers' request and retry slots.
    private func releaseAttemptResources() {
        guard let cluster else { return }
        if heldRetry {
            cluster.circuitBreakers.release(.retries)
            heldRetry = false
        }
        if heldRequest {
            cluster.circuitBreakers.release(.requests)
            heldRequest = false
        }
        host?.activeRequests.decrement()
        host = nil
    }

    private func recordOutlier(_ event: OutlierEvent) {
        guard let host, let detector = cluster?.outlierDetector else { return }
        detector.record(host: host, event: event)
    }

    /// Envoy speaks HTTP/1.1 upstream unless the cluster enables HTTP/2; gRPC needs HTTP/2.
    private func upstreamProtocol(for cluster: UpstreamCluster) -> UpstreamHTTPProtocol {
        if upgradeType != nil { return .http1 }
        return connection.runtime.upstreamProtocol(for: cluster, downstreamIsHTTP2: connection.isHTTP2)
    }

    private func attached(_ sink: any UpstreamRequestSink) {
        guard !finished, let target else {
            sink.reset()
            return
        }
        self.sink = sink
        var headers = request.headers
        if target.includeRequestAttemptCount { headers.replaceOrAdd(name: "x-envoy-attempt-count", value: String(attemptCount)) }
        if !manager.router.suppressEnvoyHeaders, let expected = perTryTimeout ?? routeTimeout {
            headers.replaceOrAdd(name: "x-envoy-expected-rq-timeout-ms", value: String(expected.milliseconds))
        }
        var authority = request.authority
        if case .autoHost? = target.hostRewrite, let host { authority = host.hostname ?? host.address.description }
        headers.replaceOrAdd(name: "host", value: authority)
        if let upgradeType {
            headers.replaceOrAdd(name: "upgrade", value: upgradeType)
            headers.replaceOrAdd(name: "connection", value: "upgrade")
        }
        var path = request.path
        if let rewritten = target.rewrittenPath {
            // Envoy names the original path whenever a rewrite applies, even one that changed nothing.
            if !manager.router.suppressEnvoyHeaders { headers.replaceOrAdd(name: "x-envoy-original-path", value: request.path) }
            path = rewritten
        }
        let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: path, headers: headers)
        if connection.isHTTP2, !requestComplete, bufferedBody.isEmpty, !head.headers.contains(name: "content-length") {
            // An HTTP/2 request says whether it has a body only with its next frame: the head
            // waits for it, so a bodiless request is not sent chunked.
            deferredHead = head
        } else {
            sendHead(head, to: sink)
        }
        if !keepsBodyForRetry || !requestComplete { downstream?.resumeRequestReading() }
    }

    /// Writes the request head with the framing the upstream needs, then what arrived so far.
    private func sendHead(_ head: HTTPRequestHead, to sink: any UpstreamRequestSink) {
        var head = head
        deferredHead = nil
        let hasBody = requestChunked || !bufferedBody.isEmpty || !requestComplete || requestTrailers != nil
        if !head.headers.contains(name: "content-length"), hasBody, connection.isHTTP2 || requestChunked {
            head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        }
        sink.writeHead(head)
        for chunk in bufferedBody { sink.writeBody(chunk) }
        if requestComplete {
            sink.writeEnd(requestTrailers)
            startPerTryTimer()
        }
        startShadows(head)
    }

    /// `request_mirror_policies`: each sampled mirror cluster gets a copy of the request as the
    /// first attempt sends it (retries are not mirrored again).
    private func startShadows(_ head: HTTPRequestHead) {
        guard !shadowsStarted, let target, !target.mirrors.isEmpty else { return }
        shadowsStarted = true
        for mirror in target.mirrors {
            guard let cluster = connection.clusters.cluster(named: mirror.cluster) else { continue }
            let shadow = ShadowRequest()
            let upstream = connection.runtime.upstreamProtocol(for: cluster, downstreamIsHTTP2: connection.isHTTP2)
            guard shadow.start(head: head, cluster: cluster, connection: connection, eventLoop: eventLoop, upstreamProtocol: upstream)
            else { continue }
            for chunk in bufferedBody { shadow.body(chunk) }
            if requestComplete { shadow.end(requestTrailers) }
            shadows.append(shadow)
        }
    }

    private func startRouteTimer() {
        guard let routeTimeout, routeTimer == nil, !finished else { return }
        routeTimer = connection.loop.timeouts.after(routeTimeout) { [weak self] in
            guard let self, !self.finished else { return }
            self.clusterStats?.timeouts.increment()
            if self.sink != nil || self.waitingPool != nil { self.recordOutlier(.timeout) }
            if self.responseStarted {
                self.abandonUpstream()
                self.flags.insert(.upstreamRequestTimeout)
                self.downstream?.resetStream()
                self.finish(status: self.responseStatus)
            } else {
                self.abandonUpstream()
                self.sendLocalReply(.upstreamTimeout)
            }
        }
    }

    private func startPerTryTimer() {
        guard let perTryTimeout, !finished else { return }
        perTryTimer?.cancel()
        perTryTimer = eventLoop.scheduleTask(in: TimeAmount(perTryTimeout)) { [weak self] in
            guard let self, !self.finished, !self.responseStarted else { return }
            self.clusterStats?.perTryTimeouts.increment()
            self.sink?.reset()
            self.sink = nil
            self.attemptEnded(.perTryTimeout)
        }
    }

    /// An attempt ended without a response that goes downstream: retry or reply.
    private func attemptEnded(_ outcome: RetryState.Outcome) {
        perTryTimer?.cancel()
        perTryTimer = nil
        clusterStats?.requestsActive.decrement()
        sink = nil
        switch outcome {
        case .failure(.reset), .failure(.protocolError):
            clusterStats?.receivedResets.increment()
            recordOutlier(.reset)
        case .failure:
            break  // the pool reported the connect failure
        case .perTryTimeout:
            recordOutlier(.timeout)
        case .response:
            break
        }
        host?.activeRequests.decrement()
        host = nil
        if let cluster, heldRetry {
            cluster.circuitBreakers.release(.retries)
            heldRetry = false
        }
        if keepsBodyForRetry, retryAllowed() {
            switch retry.decide(outcome, random: connection.random.next()) {
            case .retry(let delay):
                guard let cluster, cluster.circuitBreakers.tryAcquire(.retries) else {
                    // `max_retries` reached (the breaker counts upstream_rq_retry_overflow).
                    flags.insert(.upstreamRetryLimitExceeded)
                    break
                }
                heldRetry = true
                clusterStats?.retries.increment()
                retryTimer = eventLoop.scheduleTask(in: TimeAmount(delay)) { [weak self] in
                    self?.retryTimer = nil
                    self?.startAttempt()
                }
                return
            case .noRetry:
                if retry.policy != nil, retry.isRetriable(outcome) { flags.insert(.upstreamRetryLimitExceeded) }
            }
        }
        switch outcome {
        case .failure(let failure):
            var reply = LocalReply.upstreamFailure(failure, retried: attemptCount > 1)
            if target?.includeAttemptCountInResponse == true {
                reply.headers.replaceOrAdd(name: "x-envoy-attempt-count", value: String(attemptCount))
            }
            sendLocalReply(reply)
        case .perTryTimeout:
            sendLocalReply(.upstreamTimeout)
        case .response:
            break
        }
    }

    /// Whether the cluster's `max_retries` breaker has room for one more retry; when it has not,
    /// the response at hand goes downstream (the breaker counts the overflow).
    private func retryBudgetAvailable() -> Bool {
        guard let cluster else { return false }
        if heldRetry { return true }
        guard cluster.circuitBreakers.tryAcquire(.retries) else { return false }
        cluster.circuitBreakers.release(.retries)
        return true
    }

    /// The retry budget of the cluster's circuit breaker (Envoy's default: 3 concurrent retries).
    private func retryAllowed() -> Bool {
        guard retry.retriesLeft > 0, retry.policy != nil else { return false }
        return true
    }

    // MARK: UpstreamResponseReceiver

    func upstreamResponseHead(_ head: HTTPResponseHead) {
        guard !finished, let target else { return }
        touch()
        let status = Int(head.status.code)
        recordOutlier(.httpResponse(status: status))
        if keepsBodyForRetry, requestComplete, retry.retriesLeft > 0,
           retry.isRetriable(.response(status: status, headers: head.headers)), retryBudgetAvailable() {
            // The response is dropped; the connection cannot be reused mid-response.
            clusterStats?.countResponse(status: status)
            sink?.reset()
            attemptEnded(.response(status: status, headers: head.headers))
            return
        }
        perTryTimer?.cancel()
        responseStarted = true
        responseStatus = status
        clusterStats?.countResponse(status: status)
        if attemptCount > 1 { clusterStats?.retrySuccess.increment() }
        var response = head
        response.version = requestVersion
        ForwardedHeaders.removeHopByHop(&response.headers, keepUpgrade: status == 101)
        if !manager.router.suppressEnvoyHeaders {
            let elapsed = NIODeadline.now() - attemptStart
            response.headers.replaceOrAdd(
                name: "x-envoy-upstream-service-time", value: String(elapsed.nanoseconds / 1_000_000))
        }
        if target.includeAttemptCountInResponse {
            response.headers.replaceOrAdd(name: "x-envoy-attempt-count", value: String(attemptCount))
        }
        HeaderMutator.apply(responseMutations, to: &response.headers) { [manager, request] in
            manager.substitute($0, for: request)
        }
        manager.applyServerHeader(&response.headers)
        if let via = manager.config.via { response.headers.add(name: "via", value: via) }
        filterState.addResponseHeaders(to: &response.headers)
        if isGRPC, connection.isHTTP2, response.headers.contains(name: "grpc-status") {
            // A trailers-only answer: its end may come with a later read, after the head went
            // out without END_STREAM, so the status goes out as trailers (what gRPC clients read
            // it from otherwise).
            for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                for value in response.headers[name] { trailersOnlyStatus.add(name: name, value: value) }
                response.headers.remove(name: name)
            }
        }
        firstResponseByte = .now()
        sentResponseHeaders = response.headers
        downstream?.writeResponseHead(response)
        if status == 101, upgradeType == nil {
            // A switch nobody asked for cannot be relayed as HTTP.
            sink?.reset()
            downstream?.resetStream()
            finish(status: status)
        }
    }

    /// After the upstream's `101`: both connections stop speaking HTTP and relay bytes.
    private func becomeTunnel() {
        guard let sink, let downstream else { return }
        let toDownstream = UpgradeTunnelHandler()
        let toUpstream = UpgradeTunnelHandler()
        UpgradeTunnelHandler.join(toDownstream, toUpstream)
        self.sink = nil
        clusterStats?.requestsActive.decrement()
        if !(downstream.becomeTunnel(toDownstream) && sink.becomeTunnel(toUpstream)) {
            sink.reset()
            downstream.resetStream()
        }
        finish(status: 101)
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        guard !finished, responseStarted else { return }
        touch()
        bytesSent += body.readableBytes
        manager.stats.downstreamBytesSent.add(UInt64(body.readableBytes))
        downstream?.writeResponseBody(body)
    }

    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        guard !finished, responseStarted else { return }
        if responseStatus == 101 {
            becomeTunnel()
            return
        }
        clusterStats?.requestsActive.decrement()
        sink = nil
        var trailers = trailers
        if !trailersOnlyStatus.isEmpty {
            trailers = (trailers ?? HTTPHeaders())
            trailers!.add(contentsOf: trailersOnlyStatus)
        }
        sentResponseTrailers = trailers
        downstream?.writeResponseEnd(trailers)
        finish(status: responseStatus)
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        guard !finished else { return }
        if responseStarted {
            clusterStats?.requestsActive.decrement()
            clusterStats?.receivedResets.increment()
            sink = nil
            flags.insert(.upstreamRemoteReset)
            downstream?.resetStream()
            finish(status: responseStatus)
        } else if sink != nil {
            attemptEnded(.failure(failure))
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { downstream?.resumeRequestReading() }
    }

    // MARK: Ending

    /// Sends a local reply unless a response already started (then the stream is reset).
    func sendLocalReply(_ reply: LocalReply) {
        guard !finished else { return }
        if responseStarted {
            downstream?.resetStream()
            finish(status: responseStatus)
            return
        }
        flags.formUnion(ResponseFlags(shortName: reply.flag) ?? [])
        flags.formUnion(reply.filterFlags)
        responseDetails = reply.details
        responseStarted = true
        responseStatus = reply.status
        let parts = reply.parts(
            grpc: isGRPC, http2: connection.isHTTP2, serverName: manager.serverHeaderValue, allocator: ByteBufferAllocator(), headRequest: isHeadRequest)
        var head = parts.head
        filterState.addResponseHeaders(to: &head.headers)
        head.version = requestVersion
        HeaderMutator.apply(responseMutations, to: &head.headers) { [manager, request] in
            manager.substitute($0, for: request)
        }
        sentResponseHeaders = head.headers
        sentResponseTrailers = parts.trailers
        firstResponseByte = .now()
        downstream?.writeResponseHead(head)
        if let body = parts.body {
            bytesSent += body.readableBytes
            downstream?.writeResponseBody(body)
        }
        downstream?.writeResponseEnd(parts.trailers)
        finish(status: isGRPC ? 200 : reply.status)
    }

    private func abandonUpstream() {
        if let sink {
            sink.reset()
            clusterStats?.requestsActive.decrement()
        }
        sink = nil
        if let waitingPool {
            waitingPool.cancelWaiting(self)
            clusterStats?.requestsActive.decrement()
        }
        waitingPool = nil
    }

    private func finish(status: Int) {
        guard !finished else { return }
        finished = true
        routeTimer?.cancel()
        idleTimer?.cancel()
        perTryTimer?.cancel()
        retryTimer?.cancel()
        retryTimer = nil
        releaseAttemptResources()
        filterState.streamEnded()
        manager.stats.downstreamRequestsActive.decrement()
        if status > 0 { manager.stats.countResponse(status: status) }
        if !manager.accessLoggers.isEmpty { manager.log(accessLogEntry(status: status)) }
        bufferedBody.removeAll()
    }

    private func accessLogEntry(status: Int) -> AccessLogEntry {
        let now = NIODeadline.now()
        func since(_ deadline: NIODeadline?) -> Duration? {
            deadline.map { .nanoseconds(($0 - startTime).nanoseconds) }
        }
        return AccessLogEntry(
            request: request, startTime: wallStart, requestDuration: since(requestEndTime),
            responseDuration: since(firstResponseByte), duration: since(now),
            responseTxDuration: firstResponseByte.map { .nanoseconds((now - $0).nanoseconds) },
            responseCode: status > 0 ? status : nil, responseCodeDetails: responseDetails.isEmpty ? "via_upstream" : responseDetails,
            responseFlags: flags.union(filterState.flags), bytesReceived: UInt64(bytesReceived), bytesSent: UInt64(bytesSent),
            responseHeaders: sentResponseHeaders, responseTrailers: sentResponseTrailers, upstreamHost: host?.address,
            upstreamCluster: target?.clusterName, upstreamRequestAttemptCount: attemptCount > 0 ? attemptCount : nil,
            routeName: routeName)
    }

    // MARK: Idle timeout

    private func touch() { lastActivity = .now() }

    /// Activity does not move the timer; when it fires early it is armed again for the rest.
    private func armIdleTimer(rearm: Bool = false) {
        guard let idle = manager.config.streamIdleTimeout else { return }
        let expired: () -> Void = { [weak self] in
            guard let self, !self.finished else { return }
            if NIODeadline.now() - self.lastActivity >= TimeAmount(idle) {
                self.manager.stats.downstreamRequestIdleTimeouts.increment()
                self.abandonUpstream()
                self.sendLocalReply(.streamIdleTimeout)
            } else {
                self.armIdleTimer(rearm: true)
            }
        }
        let timeouts = connection.loop.timeouts
        idleTimer = rearm ? timeouts.at(lastActivity + TimeAmount(idle), expired) : timeouts.after(idle, expired)
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
