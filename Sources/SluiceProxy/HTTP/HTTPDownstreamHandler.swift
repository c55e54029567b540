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
    /// The upstream pools and timeouts of the connection's event loop.
    let loop: HTTPLoopResources
    /// HTTP/1 requests served on this connection, for `max_requests_per_connection`.
    var requests = 0
    /// Random values for the connection's streams (request ids, fractions, weighted picks).
    var random = FastRandom()
    /// Token buckets of `local_rate_limit_per_downstream_connection`.
    let rateLimitBuckets = LocalRateLimitConnectionBuckets()

    init(
        remote: SocketEndpoint, local: SocketEndpoint, isHTTP2: Bool, bufferLimit: Int, clusters: ClusterManager,
        runtime: HTTPRuntime, socketFactory: SocketFactory, transparentSource: SocketEndpoint?, eventLoop: any EventLoop
    ) {
        self.remote = remote
        self.local = local
        self.isHTTP2 = isHTTP2
        self.bufferLimit = bufferLimit
        self.clusters = clusters
        self.runtime = runtime
        self.socketFactory = socketFactory
        self.transparentSource = transparentSource
        self.loop = runtime.resources(on: eventLoop)
    }
}

/// Turns the decoded requests of an HTTP/1 connection into streams, one after another, and
/// writes their responses back (HTTP/2 streams: `HTTP2DownstreamStream`). Request reading waits
/// while the upstream cannot take more body, and response writability is the connection's.
final class HTTPDownstreamHandler: ChannelDuplexHandler, RemovableChannelHandler, DownstreamResponseWriter {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let manager: CompiledHTTPConnectionManager
    private let connection: HTTPDownstreamConnection
    private var context: ChannelHandlerContext?
    private var stream: HTTPStream?
    /// A read held back while the upstream could not take more request body.
    private var pendingRead = false
    /// The connection closes after the current response.
    private var closeAfterResponse = false
    private var responseHeadSent = false
    /// The response head under way said `Connection: close`: close once it ended.
    private var responseSaysClose = false
    /// The current request's end arrived; parts after it belong to the next request.
    private var requestEnded = true
    /// Pipelining: parts of requests that arrived while a response was under way, played
    /// once it ended. Reading pauses meanwhile, so this holds at most one read's worth.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    /// The parser failed behind requests still being answered: 400 once they are.
    private var protocolErrorPending = false

    init(manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection) {
        self.manager = manager
        self.connection = connection
    }

    /// Whether the current stream's upstream cannot take more request body now.
    private var upstreamHoldsReading: Bool {
        guard let stream else { return false }
        return !stream.finished && !stream.upstreamAcceptsBody
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        stream?.downstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.downstreamReset()
        stream = nil
        context.fireChannelInactive()
    }

    var downstreamIsWritable: Bool { context?.channel.isWritable ?? false }

    func resumeRequestReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let limit = manager.config.maxConnectionDuration {
            // Like draining: the next response closes the connection (HTTP/2: the connection's
            // drain handler sends GOAWAY).
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limit)) {
                self.manager.stats.downstreamConnectionsMaxDurationReached.increment()
                self.closeAfterResponse = true
                if self.stream == nil { context.close(promise: nil) }
            }
        }
        armIdleTimeout(context: context)
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
        let part = unwrapInboundIn(data)
        if !pipelined.isEmpty || (requestEnded && stream != nil) {
            pipelined.append(part)
            return
        }
        process(part, context: context)
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            requestEnded = false
            responseHeadSent = false
            connection.requests += 1
            closeAfterResponse = !head.isKeepAlive || manager.runtime.isDraining
            if let limit = manager.config.maxRequestsPerConnection, connection.requests >= limit {
                closeAfterResponse = true
            }
            let stream = HTTPStream(
                head: head, manager: manager, connection: connection, downstream: self, eventLoop: context.eventLoop)
            self.stream = stream
            stream.start()
        case .body(let body):
            // After an early response the rest of the request body has no stream to go to.
            stream?.receivedBody(body)
        case .end(let trailers):
            requestEnded = true
            stream?.receivedEnd(trailers)
        }
    }

    /// Plays pipelined requests once the response before them ended, until one is under way again.
    private func playPipelined(context: ChannelHandlerContext) {
        while let part = pipelined.first, !(requestEnded && stream != nil), context.channel.isActive {
            pipelined.removeFirst()
            process(part, context: context)
        }
        if pipelined.isEmpty, stream == nil, protocolErrorPending {
            answerProtocolError(context: context)
        } else if pipelined.isEmpty, pendingRead {
            pendingRead = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if !pipelined.isEmpty || upstreamHoldsReading {
            pendingRead = true
            return
        }
        context.read()
    }


    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is HTTPDrainEvent {
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


    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.close(promise: nil)
            return
        }
        manager.stats.downstreamProtocolErrors.increment()
        if stream != nil || !pipelined.isEmpty {
            // Requests parsed before the bad bytes are answered first.
            protocolErrorPending = true
        } else {
            answerProtocolError(context: context)
        }
    }

    /// Bytes that are not HTTP/1: Envoy's `400 Bad Request` local reply, then the connection closes.
    private func answerProtocolError(context: ChannelHandlerContext) {
        protocolErrorPending = false
        let reply = LocalReply(status: 400, body: "Bad Request", details: "http1.codec_error")
        var parts = reply.parts(grpc: false, serverName: manager.serverHeaderValue, allocator: context.channel.allocator)
        parts.head.headers.replaceOrAdd(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(parts.head)), promise: nil)
        if let body = parts.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    // MARK: DownstreamResponseWriter

    func writeResponseHead(_ head: HTTPResponseHead) {
        guard let context else { return }
        var head = head
        if head.status.code >= 200 {
            responseHeadSent = true
            if manager.runtime.isDraining { closeAfterResponse = true }
            responseSaysClose = closeAfterResponse
            if closeAfterResponse {
                head.headers.replaceOrAdd(name: "connection", value: "close")
                if manager.runtime.isDraining { manager.stats.downstreamConnectionsDrainClose.increment() }
            }
        }
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
    }

    func writeResponseBody(_ body: ByteBuffer) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context else { return }
        stream = nil
        if responseSaysClose {
            pipelined.removeAll()
            protocolErrorPending = false
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        }
        if !pipelined.isEmpty || protocolErrorPending {
            // Not from inside the finished stream's own call chain.
            context.eventLoop.assumeIsolated().execute { self.playPipelined(context: context) }
        } else if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    func resetStream() {
        stream = nil
        context?.close(promise: nil)
    }


    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool {
        guard let context else { return false }
        context.flush()
        stream = nil
        let sync = context.pipeline.syncOperations
        do {
            try sync.addHandler(tunnel, position: .after(self))
        } catch {
            return false
        }
        sync.removeIfPresent(NIOHTTPResponseHeadersValidator.self)
        sync.removeIfPresent(HTTPResponseEncoder.self)
        sync.removeIfPresent(ByteToMessageHandler<HTTPRequestDecoder>.self)
        sync.removeHandler(context: context, promise: nil)
        return true
    }

}
