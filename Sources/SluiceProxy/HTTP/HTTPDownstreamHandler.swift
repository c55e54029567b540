import NIOCore
import NIOHTTP1
import SluiceModel

/// What every stream of one downstream connection shares.
final class HTTPDownstreamConnection {
    let remote: SocketEndpoint
    /// The destination the client addressed (original destination when captured).
    let local: SocketEndpoint
    let isHTTP2: Bool
    let bufferLimit: Int
    let clusters: ClusterManager
    let runtime: HTTPRuntime
    let socketFactory: SocketFactory
    let transparentSource: SocketEndpoint?
    /// HTTP/1 requests served on this connection, for `max_requests_per_connection`.
    var requests = 0
    /// Random values for the connection's streams (request ids, fractions, weighted picks).
    var random = FastRandom()
    /// Token buckets of `local_rate_limit_per_downstream_connection`.
    let rateLimitBuckets = LocalRateLimitConnectionBuckets()

    init(
        remote: SocketEndpoint, local: SocketEndpoint, isHTTP2: Bool, bufferLimit: Int, clusters: ClusterManager,
        runtime: HTTPRuntime, socketFactory: SocketFactory, transparentSource: SocketEndpoint?
    ) {
        self.remote = remote
        self.local = local
        self.isHTTP2 = isHTTP2
        self.bufferLimit = bufferLimit
        self.clusters = clusters
        self.runtime = runtime
        self.socketFactory = socketFactory
        self.transparentSource = transparentSource
    }
}

/// Turns decoded request parts into streams and writes their responses back: on an HTTP/1
/// connection one stream after another, on an HTTP/2 stream channel exactly one.
final class HTTPDownstreamHandler: ChannelDuplexHandler, RemovableChannelHandler, DownstreamResponseWriter {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let manager: CompiledHTTPConnectionManager
    private let connection: HTTPDownstreamConnection
    private var context: ChannelHandlerContext?
    private var stream: HTTPStream?
    private var pendingRead = false
    /// HTTP/1: the connection closes after the current response.
    private var closeAfterResponse = false
    private var responseHeadSent = false
    /// The response head under way said `Connection: close`: close once it ended.
    private var responseSaysClose = false
    private var flushScheduled = false

    init(manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection) {
        self.manager = manager
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let limit = manager.config.maxConnectionDuration, !connection.isHTTP2 {
            // Like draining: the next response closes the connection (HTTP/2: the connection's
            // drain handler sends GOAWAY).
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limit)) {
                self.manager.stats.downstreamConnectionsMaxDurationReached.increment()
                self.closeAfterResponse = true
                if self.stream == nil { context.close(promise: nil) }
            }
        }
        if !connection.isHTTP2 { armIdleTimeout(context: context) }
    }

    /// `common_http_protocol_options.idle_timeout`: a keep-alive connection with no request for
    /// that long is closed (HTTP/2 connections: by the drain handler).
    private func armIdleTimeout(context: ChannelHandlerContext) {
        guard let idle = manager.config.idleTimeout else { return }
        let served = connection.requests
        context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(idle)) {
            guard context.channel.isActive else { return }
            if self.connection.requests == served, self.stream == nil {
                self.manager.stats.downstreamConnectionsIdleTimeout.increment()
                context.close(promise: nil)
            } else {
                self.armIdleTimeout(context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            responseHeadSent = false
            connection.requests += 1
            if !connection.isHTTP2 {
                closeAfterResponse = !head.isKeepAlive || manager.runtime.isDraining
                if let limit = manager.config.maxRequestsPerConnection, connection.requests >= limit {
                    closeAfterResponse = true
                }
            }
            let stream = HTTPStream(
                head: head, manager: manager, connection: connection, downstream: self, eventLoop: context.eventLoop)
            self.stream = stream
            stream.start()
        case .body(let body):
            stream?.receivedBody(body)
        case .end(let trailers):
            stream?.receivedEnd(trailers)
        }
    }

    func read(context: ChannelHandlerContext) {
        if let stream, !stream.finished, !stream.upstreamAcceptsBody {
            pendingRead = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        stream?.downstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is HTTPDrainEvent, !connection.isHTTP2 {
            // Only a response whose head is still to come can say `Connection: close`; one
            // already under way ends normally and the next one closes (writeResponseHead checks
            // the drain flag).
            if stream == nil || stream!.finished { closeIfStillIdle(after: manager.config.drainTimeout, context: context) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// An idle keep-alive connection of a draining proxy closes once the drain timeout passed
    /// without a new request (a request arriving meanwhile is answered with `Connection: close`).
    private func closeIfStillIdle(after delay: Duration, context: ChannelHandlerContext) {
        let served = connection.requests
        context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) {
            guard self.connection.requests == served, self.stream == nil else { return }
            self.manager.stats.downstreamConnectionsDrainClose.increment()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.downstreamReset()
        stream = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { manager.stats.downstreamProtocolErrors.increment() }
        context.close(promise: nil)
    }

    // MARK: DownstreamResponseWriter

    func writeResponseHead(_ head: HTTPResponseHead) {
        guard let context else { return }
        var head = head
        if head.status.code >= 200 {
            responseHeadSent = true
            if !connection.isHTTP2 {
                if manager.runtime.isDraining { closeAfterResponse = true }
                responseSaysClose = closeAfterResponse
                if closeAfterResponse {
                    head.headers.replaceOrAdd(name: "connection", value: "close")
                    if manager.runtime.isDraining { manager.stats.downstreamConnectionsDrainClose.increment() }
                }
            }
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if head.status.code < 200 { context.flush() } else { scheduleFlush(context) }
    }

    func writeResponseBody(_ body: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        scheduleFlush(context)
    }

    /// One flush per event-loop turn: what the upstream reads of one turn brought goes out in
    /// one write instead of a system call per part.
    private func scheduleFlush(_ context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context else { return }
        // Cleared first: ending an HTTP/2 stream closes its channel at once, and that close must
        // not count as the client going away.
        stream = nil
        if responseSaysClose {
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.write(wrapOutboundOut(.end(trailers)), promise: nil)
            scheduleFlush(context)
        }
        stream = nil
        if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    func resetStream() {
        stream = nil
        context?.close(promise: nil)
    }

    var downstreamIsWritable: Bool { context?.channel.isWritable ?? false }

    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool {
        guard let context, !connection.isHTTP2 else { return false }
        context.flush()
        stream = nil
        let sync = context.pipeline.syncOperations
        do {
            try sync.addHandler(tunnel, position: .after(self))
        } catch {
            return false
        }
        sync.removeIfPresent(HTTPServerPipelineHandler.self)
        sync.removeIfPresent(HTTPServerProtocolErrorHandler.self)
        sync.removeIfPresent(NIOHTTPResponseHeadersValidator.self)
        sync.removeIfPresent(HTTPResponseEncoder.self)
        sync.removeIfPresent(ByteToMessageHandler<HTTPRequestDecoder>.self)
        sync.removeHandler(context: context, promise: nil)
        return true
    }

    func resumeRequestReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
